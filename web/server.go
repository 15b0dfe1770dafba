package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// RootPath is where the dashboard is served.
const RootPath = "/monitoring"

// Errors of New.
var (
	ErrNoRedis          = errors.New("web: Config.Redis is nil (pass the Redis the jobs live in, e.g. from asynq.ParseRedisURI(REDIS_URL).MakeRedisClient())")
	ErrHalfCredentials  = errors.New("web: set both Username and Password (WEB_USERNAME and WEB_PASSWORD), or neither")
	ErrBadPrometheusURL = errors.New("web: PrometheusAddr must be an http(s) URL, e.g. http://prometheus:9090")
)

// Config configures the operator site.
type Config struct {
	// Redis is the Redis the jobs live in. Required. The Server uses it
	// and never closes it.
	Redis redis.UniversalClient
	// Username and Password guard /monitoring with HTTP basic auth,
	// compared in constant time. Both empty: no login, for loopback use
	// only (the caller decides); one without the other is an error.
	// Default: "".
	Username, Password string
	// ReadOnly is asynqmon's read-only mode: the dashboard shows queues
	// and tasks but cannot delete, run, archive, cancel or pause.
	// Default: false.
	ReadOnly bool
	// PrometheusAddr is the Prometheus server that asynqmon queries for
	// its metrics view, e.g. http://prometheus:9090. Default: "" (the
	// metrics view is off).
	PrometheusAddr string
	// AllowedHosts are the Host header values the dashboard answers (a
	// name for any port, a name:port, or "*" for any); others get 421,
	// which defeats DNS rebinding. Default: with a login, any host;
	// without one, LoopbackHosts.
	AllowedHosts []string
	// ReadyTimeout bounds the Redis ping of /readyz and of each /metrics
	// scrape. Default: 1s.
	ReadyTimeout time.Duration
	// Logger receives refused logins and Redis trouble. Default: discard.
	Logger *slog.Logger
}

// withDefaults fills the defaults and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Redis == nil {
		return c, ErrNoRedis
	}
	if (c.Username == "") != (c.Password == "") {
		return c, ErrHalfCredentials
	}
	if c.PrometheusAddr != "" {
		u, err := url.Parse(c.PrometheusAddr)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("%w (got %q)", ErrBadPrometheusURL, c.PrometheusAddr)
		}
		c.PrometheusAddr = strings.TrimRight(c.PrometheusAddr, "/")
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = time.Second
	}
	if len(c.AllowedHosts) == 0 {
		c.AllowedHosts = LoopbackHosts
		if c.Username != "" {
			c.AllowedHosts = []string{"*"}
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Server is the operator site.
type Server struct {
	cfg     Config
	handler http.Handler
}

// New builds the site. It does not contact Redis: /readyz and /metrics do.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}

	mon := asynqmon.New(asynqmon.Options{
		RootPath:          RootPath,
		RedisConnOpt:      sharedRedis{cfg.Redis},
		PayloadFormatter:  Formatter{},
		ResultFormatter:   Formatter{},
		PrometheusAddress: cfg.PrometheusAddr,
		ReadOnly:          cfg.ReadOnly,
	})
	var dashboard http.Handler = mon
	if cfg.Username != "" {
		dashboard = basicAuth(cfg.Username, cfg.Password, cfg.Logger, mon)
	}
	dashboard = hostGuard(cfg.AllowedHosts, cfg.Logger, dashboard)

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newQueueCollector(cfg.Redis, cfg.ReadyTimeout, cfg.Logger),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	mux := http.NewServeMux()
	mux.Handle(RootPath+"/", dashboard)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}))
	mux.Handle("GET /{$}", http.RedirectHandler(RootPath+"/", http.StatusFound))
	s.handler = crossOrigin(cfg.Logger, mux)
	return s, nil
}

// Handler serves /monitoring/ (the dashboard, behind the login when one is
// configured, for the allowed hosts only), /healthz, /readyz and /metrics
// (without login), and redirects / to the dashboard. Cross-site
// state-changing requests are refused everywhere.
func (s *Server) Handler() http.Handler { return s.handler }

// healthz answers 200 while the process serves HTTP; it needs no Redis.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, "ok\n")
}

// readyz answers 200 when Redis answers a PING within ReadyTimeout, 503
// otherwise.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	if err := s.cfg.Redis.Ping(ctx).Err(); err != nil {
		s.cfg.Logger.WarnContext(r.Context(), "readyz: redis does not answer", slog.Any("error", err))
		http.Error(w, "redis does not answer", http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

// sharedRedis hands asynqmon the caller's Redis client instead of letting
// it open connections of its own.
type sharedRedis struct{ c redis.UniversalClient }

// MakeRedisClient implements asynq.RedisConnOpt.
func (s sharedRedis) MakeRedisClient() any { return s.c }

var _ asynq.RedisConnOpt = sharedRedis{}
