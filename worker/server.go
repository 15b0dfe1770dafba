package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
	"github.com/mcpjobs/mcpjobs/worker/token"
)

// Config configures a Worker.
type Config struct {
	// Client calls the platform. Required.
	Client *intranet.Client
	// Tokens gives the platform token. Default: the token shared by every
	// replica through Redis (package worker/token), fetched with Client.
	Tokens TokenSource
	// Concurrency is the number of jobs run at once. Default: 20.
	Concurrency int
	// Retry is the retry policy. Default: RetryPolicy{} with its defaults.
	Retry RetryPolicy
	// ShutdownTimeout is how long in-flight jobs may run on after a
	// shutdown begins; jobs still running then go back to the queue.
	// Default: 30s.
	ShutdownTimeout time.Duration
	// IdleCheckInterval is how often an idle worker looks at every queue
	// although Redis announced no change (±25%). An idle worker waits for
	// Redis to say that a queue's pending list changed (client-side-caching
	// invalidations, Redis 6+), so a new job is taken within a round trip
	// of its enqueue; this look is the safety net. Default: 1s.
	IdleCheckInterval time.Duration
	// QueueCheckInterval is how often an idle worker looks for new jobs
	// when Redis cannot announce them (a Redis before 6 or one that refuses
	// CLIENT TRACKING, a cluster client, while the announcing connection
	// reconnects) (±25%). Default: 100ms.
	QueueCheckInterval time.Duration
	// DelayedCheckInterval is how often scheduled and retrying jobs that
	// are due are moved back to their queue. Default: 1s.
	DelayedCheckInterval time.Duration
	// BatchPolling paces the jobs that follow batch tasks.
	BatchPolling BatchPolling
	// Retention is how long the jobs a worker starts (batch polls and
	// cancels) stay readable after they end. Default: 24h.
	Retention time.Duration
	// Metrics, when set, registers the worker's mcpjobs_ series.
	// Default: none.
	Metrics prometheus.Registerer
	// ParkBackoff paces the checks of a replica whose credentials the
	// platform refused. Default: ParkBackoff{} with its defaults.
	ParkBackoff ParkBackoff
	// Logger receives the worker's logs. Default: discard.
	Logger *slog.Logger
	// LogLevel is the level passed to asynq's own logger. Default: info.
	LogLevel slog.Level
}

// Worker is one worker replica: an asynq server with the handlers of every
// job type.
type Worker struct {
	rdb      redis.UniversalClient
	cfg      Config
	log      *slog.Logger
	asynqCfg asynq.Config
	mux      *asynq.ServeMux
	jobs     *store.Client
	metrics  *metrics

	// parkCh asks Run to park the replica (its credentials were refused);
	// parked is true while it is parked.
	parkCh chan struct{}
	parked atomic.Bool

	// pickup is Run's long poll (tests look at it).
	pickup atomic.Pointer[pickup]
}

// errMissingClient is returned by New without a platform client.
var errMissingClient = errors.New("worker: Config.Client is nil (build one with intranet.New and INTRANET_BASE_URL)")

// New returns a Worker on a Redis connection, which it does not close.
func New(rdb redis.UniversalClient, cfg Config) (*Worker, error) {
	if cfg.Client == nil {
		return nil, errMissingClient
	}
	m := newMetrics(cfg.Metrics)
	if cfg.Tokens == nil {
		shared, err := token.New(token.Config{Redis: rdb, Auth: cfg.Client, Logger: cfg.Logger,
			OnLockWait: func(d time.Duration) { m.lockWait.Observe(d.Seconds()) }})
		if err != nil {
			return nil, err
		}
		registerTokenMetrics(cfg.Metrics, shared)
		cfg.Tokens = shared
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 20
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.QueueCheckInterval <= 0 {
		cfg.QueueCheckInterval = 100 * time.Millisecond
	}
	if cfg.IdleCheckInterval <= 0 {
		cfg.IdleCheckInterval = time.Second
	}
	if cfg.DelayedCheckInterval <= 0 {
		cfg.DelayedCheckInterval = time.Second
	}
	cfg.BatchPolling = cfg.BatchPolling.withDefaults()
	cfg.ParkBackoff = cfg.ParkBackoff.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Retry = cfg.Retry.withDefaults()
	w := &Worker{rdb: rdb, cfg: cfg, log: cfg.Logger, metrics: m, parkCh: make(chan struct{}, 1),
		jobs: store.NewClient(rdb, store.Options{Retention: cfg.Retention, Logger: cfg.Logger})}
	w.mux = asynq.NewServeMux()
	w.mux.Use(w.announce, w.cancellation)
	w.mux.HandleFunc(jobs.TypeAspect, w.handleAspect)
	w.mux.HandleFunc(jobs.TypeBigQuery, w.handleBigQuery)
	w.mux.HandleFunc(jobs.TypeDAG, w.handleDAG)
	w.mux.HandleFunc(jobs.TypeBatchSubmit, w.handleSubmit)
	w.mux.HandleFunc(jobs.TypeBatchPoll, w.handlePoll)
	w.mux.HandleFunc(jobs.TypeBatchStatus, w.handleStatus)
	w.asynqCfg = asynq.Config{
		Concurrency:     cfg.Concurrency,
		Queues:          jobs.Queues,
		RetryDelayFunc:  cfg.Retry.Delay,
		IsFailure:       isFailure,
		ErrorHandler:    asynq.ErrorHandlerFunc(w.logError),
		Logger:          asynqLogger{cfg.Logger},
		LogLevel:        asynqLevel(cfg.LogLevel),
		ShutdownTimeout: cfg.ShutdownTimeout,

		// The pickup (pickup.go) waits for work; asynq's own sleep after
		// an empty round only delays a job that arrives during it.
		TaskCheckInterval:        time.Millisecond,
		DelayedTaskCheckInterval: cfg.DelayedCheckInterval,
	}
	return w, nil
}

// Run processes jobs until ctx ends, then shuts down gracefully: in-flight
// jobs finish within ShutdownTimeout or go back to the queue.
//
// When the platform refuses this replica's own credentials (40101), Run
// parks it: it stops taking jobs, hands back the ones it holds without
// using up their retries, reports not ready (Ready), and checks its
// credentials with backoff (ParkBackoff), taking jobs again once they work.
func (w *Worker) Run(ctx context.Context) error {
	defer func() {
		if c, ok := w.cfg.Tokens.(io.Closer); ok {
			_ = c.Close()
		}
	}()
	queues := make([]string, 0, len(w.asynqCfg.Queues))
	for q := range w.asynqCfg.Queues {
		queues = append(queues, q)
	}
	pick := newPickup(w.rdb, queues, w.cfg.IdleCheckInterval, w.cfg.QueueCheckInterval, w.log)
	pick.start()
	defer pick.close()
	w.pickup.Store(pick)
	for {
		// An asynq.Server cannot start again once shut down: each
		// stretch of taking jobs has its own.
		pick.resume()
		server := asynq.NewServerFromRedisClient(dequeueClient{w.rdb, pick}, w.asynqCfg)
		if err := server.Start(w.mux); err != nil {
			return fmt.Errorf("worker: start: %w", err)
		}
		w.log.InfoContext(ctx, "worker started", slog.Int("concurrency", w.cfg.Concurrency))
		select {
		case <-ctx.Done():
			w.log.Info("worker stopping", slog.Duration("shutdown_timeout", w.cfg.ShutdownTimeout))
			pick.interrupt()
			server.Shutdown()
			return nil
		case <-w.parkCh:
		}
		w.log.ErrorContext(ctx, "platform refused this replica's credentials (40101): handing back its jobs and taking no more")
		pick.interrupt()
		server.Shutdown()
		select {
		case <-w.parkCh: // asked again while shutting down
		default:
		}
		if !w.park(ctx) {
			return nil
		}
	}
}

// cancellation fails a job whose run its owner cancelled as "cancelled"
// (asynq would retry it otherwise). A job that has not started needs no
// check here: cancel_job archives a waiting job atomically, and re-sends
// the cancellation of a running one until its run ends (store.Client.Cancel),
// so one that starts just as it is cancelled is stopped too, at no cost to
// every other job.
func (w *Worker) cancellation(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		err := next.ProcessTask(ctx, t)
		if err == nil || ctx.Err() == nil {
			return err
		}
		id := t.ResultWriter().TaskID()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		cancelled, cerr := store.IsCancelled(cctx, w.rdb, id)
		if cerr != nil || !cancelled {
			return err // a shutdown: the job goes back to the queue
		}
		w.recordFailure(cctx, t, jobs.Failure{Class: "cancelled", Message: "cancelled by its owner"}, start)
		w.log.InfoContext(cctx, "job cancelled", slog.String("job_id", id), slog.String("type", t.Type()))
		return fmt.Errorf("%w: %w", errCancelled, asynq.SkipRetry)
	})
}

// announcedKey marks, in a run's context, a flag that recordEnd sets once
// it has announced the run's end.
type announcedKey struct{}

// announce tells waiting callers that an attempt ended, unless the handler
// did as it recorded the result.
func (w *Worker) announce(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		announced := false
		err := next.ProcessTask(context.WithValue(ctx, announcedKey{}, &announced), t)
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		w.metrics.observeEnd(t.Type(), err, retried, maxRetry)
		if announced {
			return err
		}
		id := t.ResultWriter().TaskID()
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if perr := store.Announce(actx, w.rdb, id); perr != nil {
			w.log.Warn("announce job end", slog.String("job_id", id), slog.Any("error", perr))
		}
		return err
	})
}

func (w *Worker) logError(ctx context.Context, t *asynq.Task, err error) {
	id, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	level := slog.LevelWarn
	if errors.Is(err, asynq.SkipRetry) || retried >= maxRetry {
		level = slog.LevelError
	}
	w.log.Log(ctx, level, "job attempt failed",
		slog.String("job_id", id), slog.String("type", t.Type()),
		slog.Int("attempt", retried+1), slog.Any("error", err))
}
