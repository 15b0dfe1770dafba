package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/mcpjobs/mcpjobs/internal/config"
	"github.com/mcpjobs/mcpjobs/worker"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// workerFlags are the flags of a worker replica, shared by worker and dev.
type workerFlags struct {
	concurrency     int
	shutdownTimeout time.Duration
	callTimeout     time.Duration
	polling         worker.BatchPolling
	retention       time.Duration
	metrics         prometheus.Registerer
}

func (f *workerFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.concurrency, "concurrency", 20, "jobs run at once by this replica")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long in-flight jobs may finish before they go back to the queue")
	fs.DurationVar(&f.callTimeout, "call-timeout", 120*time.Second, "timeout of one platform call")
	fs.DurationVar(&f.polling.Min, "batch-poll-min", 2*time.Second, "shortest wait between two checks of a batch job's platform task")
	fs.DurationVar(&f.polling.Max, "batch-poll-max", time.Minute, "longest wait between two checks of a batch job's platform task")
	fs.DurationVar(&f.polling.Deadline, "batch-poll-deadline", 7*24*time.Hour, "how long a batch task is followed before its job fails (at most 168h)")
	fs.DurationVar(&f.retention, "retention", 24*time.Hour, "how long finished jobs stay readable")
}

func registerIntranetFlags(fs *flag.FlagSet, c *config.Intranet) {
	fs.StringVar(&c.BaseURL, "intranet-base-url", c.BaseURL, "platform base URL (INTRANET_BASE_URL)")
	fs.StringVar(&c.AuthURL, "intranet-auth-url", c.AuthURL, "platform auth URL (INTRANET_AUTH_URL; default base URL + /auth/token)")
	fs.StringVar(&c.Username, "intranet-username", c.Username, "platform service account (INTRANET_USERNAME)")
	fs.StringVar(&c.TokenPrefix, "intranet-token-prefix", c.TokenPrefix, "text before the token in Authorization (INTRANET_TOKEN_PREFIX)")
}

var workerEnv = []string{"REDIS_URL", "REDIS_CA_FILE", "INTRANET_BASE_URL", "INTRANET_AUTH_URL", "INTRANET_USERNAME", "INTRANET_PASSWORD", "INTRANET_TOKEN_PREFIX", "LOG_LEVEL", "LOG_FORMAT"}

func runWorker(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("[flags]", workerEnv...)
	var wf workerFlags
	wf.register(fs)
	redisURL := fs.String("redis-url", orDefault(a.cfg.RedisURL, defaultRedisURL), "Redis URL (REDIS_URL)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at /metrics, and /healthz and /readyz, on this address, e.g. 127.0.0.1:9090 (default: off)")
	registerIntranetFlags(fs, &a.cfg.Intranet)
	if err := parse(fs, args); err != nil {
		return err
	}
	rdb, err := openRedis(ctx, a.redisURL(*redisURL), a.cfg.RedisCAFile)
	if err != nil {
		return err
	}
	defer rdb.Close()
	reg := newRegistry()
	wf.metrics = reg
	w, err := newWorker(a, rdb, wf)
	if err != nil {
		return err
	}
	serve, err := serveMetrics(ctx, a, *metricsAddr, reg, w.Ready)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(gctx) })
	g.Go(serve)
	return g.Wait()
}

// newWorker builds a worker replica from the configuration.
func newWorker(a *app, rdb redis.UniversalClient, wf workerFlags) (*worker.Worker, error) {
	ic := a.cfg.Intranet
	if err := checkCredentials(ic); err != nil {
		return nil, err
	}
	client, err := intranet.New(intranet.Config{
		BaseURL:      ic.BaseURL,
		AuthURL:      ic.AuthURL,
		Username:     ic.Username,
		Password:     ic.Password,
		PasswordFile: ic.PasswordFile,
		TokenPrefix:  ic.TokenPrefix,
		Timeout:      wf.callTimeout,
		Logger:       a.log.With(slog.String("component", "intranet")),
	})
	if err != nil {
		return nil, err
	}
	return worker.New(rdb, worker.Config{
		Client:          client,
		Concurrency:     wf.concurrency,
		ShutdownTimeout: wf.shutdownTimeout,
		BatchPolling:    wf.polling,
		Retention:       wf.retention,
		Metrics:         wf.metrics,
		Logger:          a.log.With(slog.String("component", "worker")),
		LogLevel:        a.cfg.LogLevel,
	})
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// errNoCredentials: a worker refuses to start without the platform service
// account, rather than take jobs it could only hand back.
var errNoCredentials = errors.New("worker: no platform credentials: set INTRANET_USERNAME and INTRANET_PASSWORD (or INTRANET_PASSWORD_FILE); " +
	"every job may need the shared token, which a worker without credentials cannot refresh")

// checkCredentials refuses a worker configuration without a service account.
func checkCredentials(ic config.Intranet) error {
	if ic.Username == "" || (ic.Password == "" && ic.PasswordFile == "") {
		return errNoCredentials
	}
	return nil
}
