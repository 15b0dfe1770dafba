package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/mcpjobs/mcpjobs/web"
)

var webEnv = []string{"REDIS_URL", "REDIS_CA_FILE", "WEB_USERNAME", "WEB_PASSWORD", "LOG_LEVEL", "LOG_FORMAT"}

func runWeb(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("[flags]", webEnv...)
	addr := fs.String("addr", "127.0.0.1:8090", "HTTP address: /monitoring (dashboard), /metrics, /healthz, /readyz")
	redisURL := fs.String("redis-url", orDefault(a.cfg.RedisURL, defaultRedisURL), "Redis URL (REDIS_URL)")
	insecure := fs.Bool("insecure-no-auth", false, "allow a non-loopback --addr without WEB_USERNAME and WEB_PASSWORD")
	readOnly := fs.Bool("read-only", false, "dashboard in read-only mode: no delete, run, archive, cancel or pause")
	promAddr := fs.String("prometheus-addr", "", "Prometheus URL for the dashboard's metrics view, e.g. http://prometheus:9090")
	hosts := fs.String("allowed-hosts", "", `Host names the dashboard answers, comma-separated ("name", "name:port" or "*"); default: any with a login, loopback names without`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkWebExposure(a, *addr, *insecure); err != nil {
		return err
	}
	rdb, err := openRedis(ctx, a.redisURL(*redisURL), a.cfg.RedisCAFile)
	if err != nil {
		return err
	}
	defer rdb.Close()
	h, err := newWebHandler(a, rdb, *readOnly, *promAddr, splitList(*hosts))
	if err != nil {
		return err
	}
	l, err := listen(*addr, "--addr")
	if err != nil {
		return err
	}
	base := "http://" + l.Addr().String()
	a.log.Info("serving the operator site", slog.String("dashboard", base+web.RootPath+"/"),
		slog.String("metrics", base+"/metrics"), slog.Bool("login", a.cfg.WebUsername != ""),
		slog.Bool("read_only", *readOnly))
	return serveHTTP(ctx, l, h, a.log)
}

// startWeb serves the operator site for dev on addr, in g, until ctx ends,
// and returns its base URL. The login rules are web's, without
// --insecure-no-auth: a non-loopback addr needs WEB_USERNAME and
// WEB_PASSWORD.
func startWeb(ctx context.Context, a *app, rdb redis.UniversalClient, addr string, g *errgroup.Group) (url string, err error) {
	if err := checkWebExposure(a, addr, false); err != nil {
		return "", err
	}
	h, err := newWebHandler(a, rdb, false, "", nil)
	if err != nil {
		return "", err
	}
	l, err := listen(addr, "--web-addr")
	if err != nil {
		return "", err
	}
	g.Go(func() error { return serveHTTP(ctx, l, h, a.log) })
	return "http://" + l.Addr().String(), nil
}

// newWebHandler builds the operator site on rdb.
func newWebHandler(a *app, rdb redis.UniversalClient, readOnly bool, promAddr string, allowedHosts []string) (http.Handler, error) {
	s, err := web.New(web.Config{
		Redis:          rdb,
		AllowedHosts:   allowedHosts,
		Username:       a.cfg.WebUsername,
		Password:       a.cfg.WebPassword,
		ReadOnly:       readOnly,
		PrometheusAddr: promAddr,
		Logger:         a.log.With(slog.String("component", "web")),
	})
	if err != nil {
		return nil, err
	}
	return s.Handler(), nil
}

// checkWebExposure refuses a half-set login, and a dashboard without
// login beyond loopback unless insecure.
func checkWebExposure(a *app, addr string, insecure bool) error {
	if (a.cfg.WebUsername == "") != (a.cfg.WebPassword == "") {
		return web.ErrHalfCredentials
	}
	if a.cfg.WebUsername != "" || isLoopback(addr) || insecure {
		return nil
	}
	if a.name == "dev" {
		return errors.New("refusing to serve the dashboard on " + addr + " without a login: set WEB_USERNAME and WEB_PASSWORD, or bind 127.0.0.1 (--web-addr)")
	}
	return errors.New("refusing to serve the dashboard on " + addr + " without a login: set WEB_USERNAME and WEB_PASSWORD, bind 127.0.0.1, or pass --insecure-no-auth")
}

// splitList splits a comma-separated flag value, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
