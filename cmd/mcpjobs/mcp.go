package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/mcp"
)

var mcpEnv = append([]string{"REDIS_URL", "REDIS_CA_FILE", "REDIS_WAIT_REPLICAS", "MCP_AUTH_TOKENS", "INTRANET_COVERAGES", "LOG_LEVEL", "LOG_FORMAT"}, oauthEnv...)

func runMCP(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("[flags]", mcpEnv...)
	transport := fs.String("transport", "stdio", "stdio or http")
	addr := fs.String("addr", "127.0.0.1:8080", "HTTP address (with --transport http); MCP is served at /mcp")
	insecure := fs.Bool("insecure-no-auth", false, "allow HTTP on a non-loopback address without MCP_AUTH_TOKENS")
	redisURL := fs.String("redis-url", orDefault(a.cfg.RedisURL, defaultRedisURL), "Redis URL (REDIS_URL)")
	fs.DurationVar(&a.retention, "retention", 24*time.Hour, "how long finished jobs stay readable")
	fs.IntVar(&a.cfg.RedisWaitReplicas, "redis-wait-replicas", a.cfg.RedisWaitReplicas, "Redis replicas that must acknowledge a job before its job_id is handed out (REDIS_WAIT_REPLICAS; see docs/reliability.md)")
	fs.BoolVar(&a.statusServiceToken, "status-service-token", false, "let query_task_status ask the platform with the service token about batch tasks not submitted through mcpjobs, for every identity (default: off: callers pass their own auth_token)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at /metrics, and /healthz and /readyz (Redis answers), on this address, e.g. 127.0.0.1:9091 (default: off)")
	var of oauthFlags
	of.register(fs, a.cfg)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *transport != "stdio" && *transport != "http" {
		fmt.Fprintf(a.stderr, "--transport %q: use stdio or http\n", *transport)
		return errUsage
	}
	var oa *mcp.OAuth
	if *transport == "http" {
		var err error
		if oa, err = of.build(ctx, a, *addr); err != nil {
			return err
		}
	}
	rdb, err := openRedis(ctx, a.redisURL(*redisURL), a.cfg.RedisCAFile)
	if err != nil {
		return err
	}
	defer rdb.Close()
	reg := newRegistry()
	srv, jc, err := newMCPServer(a, rdb, reg, oa)
	if err != nil {
		return err
	}
	defer jc.Close()
	defer srv.Close()
	serve, err := serveMetrics(ctx, a, *metricsAddr, reg, redisReady(rdb))
	if err != nil {
		return err
	}
	go func() { _ = serve() }()
	if *transport == "stdio" {
		a.log.Info("serving MCP over stdio")
		err := srv.ServeStdio(ctx, a.stdin, a.stdout)
		if ctx.Err() != nil || errors.Is(err, io.EOF) {
			return nil // a signal, or the client closed stdin
		}
		return err
	}
	if err := checkExposure(*addr, srv, *insecure); err != nil {
		return err
	}
	l, err := listen(*addr, "--addr")
	if err != nil {
		return err
	}
	a.log.Info("serving MCP over HTTP", slog.String("url", "http://"+l.Addr().String()+"/mcp"))
	return serveHTTP(ctx, l, srv.HTTPHandler(), a.log)
}

// newMCPServer builds the MCP server and its jobs client; oa, when set,
// lets HTTP callers sign in with the identity provider.
func newMCPServer(a *app, rdb redis.UniversalClient, reg prometheus.Registerer, oa *mcp.OAuth) (*mcp.Server, *store.Client, error) {
	tokens, err := mcp.ParseTokens(a.cfg.MCPAuthTokens)
	if err != nil {
		return nil, nil, err
	}
	jc := store.NewClient(rdb, store.Options{
		Retention:          a.retention,
		WaitReplicas:       a.cfg.RedisWaitReplicas,
		ServiceTokenStatus: a.statusServiceToken,
		Logger:             a.log.With(slog.String("component", "jobs")),
	})
	srv, err := mcp.New(mcp.Options{
		Jobs:      jc,
		Version:   version(),
		Coverages: a.cfg.Coverages,
		Tokens:    tokens,
		OAuth:     oa,
		Metrics:   reg,
		Logger:    a.log.With(slog.String("component", "mcp")),
	})
	if err != nil {
		_ = jc.Close()
		return nil, nil, err
	}
	return srv, jc, nil
}

// checkExposure refuses to serve MCP without authentication beyond loopback.
func checkExposure(addr string, srv *mcp.Server, insecure bool) error {
	if isLoopback(addr) || srv.HasTokens() || srv.HasOAuth() || insecure {
		return nil
	}
	return errors.New("refusing to serve MCP on " + addr + " without authentication: set MCP_AUTH_TOKENS (name:token,...) or MCP_OAUTH_ISSUER, bind 127.0.0.1, or pass --insecure-no-auth")
}
