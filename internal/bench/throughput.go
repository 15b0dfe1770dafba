package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/worker"
)

// ThroughputConfig sets up the throughput scenario.
type ThroughputConfig struct {
	// Jobs is the number of jobs each side runs. Default: 20000.
	Jobs int
	// Rounds splits Jobs into rounds that alternate between the sides, so
	// that a change in the machine's load meanwhile touches both. Each
	// round queues its jobs first, then starts a worker (or server) and
	// times it until they have all completed. Default: 4.
	Rounds int
	// Concurrency is the number of jobs the worker, and the bare asynq
	// server, run at once. Default: 20 (the worker's default).
	Concurrency int
	// Timeout bounds each round. Default: 2m.
	Timeout time.Duration
	// Redis gives each side its database. Required.
	Redis Redis
}

func (c ThroughputConfig) withDefaults() ThroughputConfig {
	if c.Jobs <= 0 {
		c.Jobs = 20000
	}
	if c.Rounds <= 0 {
		c.Rounds = 4
	}
	c.Rounds = min(c.Rounds, c.Jobs)
	if c.Concurrency <= 0 {
		c.Concurrency = 20
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	return c
}

// ThroughputRun is one side's figures.
type ThroughputRun struct {
	Jobs      int     `json:"jobs"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"jobs_per_s"`
	// RedisCommandsPerJob and RedisCPUPerJob are what Redis did per job
	// while the jobs ran (INFO stats total_commands_processed and INFO cpu
	// deltas, the bench's completion polls included).
	RedisCommandsPerJob float64 `json:"redis_commands_per_job"`
	RedisCPUPerJob      float64 `json:"redis_cpu_us_per_job"`
}

// ThroughputReport compares the worker, running every job against the
// simulator, with an asynq server whose handler does nothing.
type ThroughputReport struct {
	Scenario    string `json:"scenario"`
	Jobs        int    `json:"jobs"`
	Rounds      int    `json:"rounds"`
	Concurrency int    `json:"concurrency"`
	// Ratio is the worker's jobs/s over the bare server's (target ≥ 0.7).
	Ratio float64 `json:"ratio_worker_over_bare"`
	// Worker is worker.Worker against the simulator with no latency: per
	// job a platform token (in memory), an HTTP call, JSON both ways, and
	// the result written to Redis with the end announced, in one round
	// trip.
	Worker ThroughputRun `json:"mcpjobs_worker"`
	// Bare is asynq.Server with an empty handler.
	Bare ThroughputRun `json:"bare_asynq"`
	// PlatformCalls and AuthCalls are what the simulator saw on the
	// worker's side.
	PlatformCalls int64 `json:"platform_calls"`
	AuthCalls     int64 `json:"auth_calls"`
}

// Throughput runs Jobs code-to-DAG jobs on each side, in alternating
// rounds: with worker.Worker against the simulator, and with a bare
// asynq.Server. Both sides queue their jobs through store.Client, so they
// run the same tasks.
func Throughput(ctx context.Context, cfg ThroughputConfig) (*ThroughputReport, error) {
	cfg = cfg.withDefaults()
	rep := &ThroughputReport{Scenario: "throughput", Jobs: cfg.Jobs, Rounds: cfg.Rounds, Concurrency: cfg.Concurrency}
	var sides []*throughputSide
	defer func() {
		for _, s := range sides {
			s.close()
		}
	}()
	for _, side := range []Side{SideMCPJobs, SideBaseline} {
		s, err := openThroughputSide(ctx, cfg, side)
		if err != nil {
			return nil, fmt.Errorf("%s side: %w", side, err)
		}
		sides = append(sides, s)
	}
	for r := range cfg.Rounds {
		n := cfg.Jobs / cfg.Rounds
		if r == cfg.Rounds-1 {
			n = cfg.Jobs - n*(cfg.Rounds-1)
		}
		for _, s := range sides {
			if err := s.round(ctx, n, cfg.Timeout); err != nil {
				return nil, fmt.Errorf("%s side, round %d: %w", s.db.Side, r+1, err)
			}
		}
	}
	for _, s := range sides {
		if err := s.check(cfg.Jobs); err != nil {
			return nil, fmt.Errorf("%s side: %w", s.db.Side, err)
		}
	}
	rep.Worker, rep.Bare = sides[0].run(), sides[1].run()
	st := sides[0].plat.sim.Stats()
	rep.PlatformCalls, rep.AuthCalls = st.Calls["dag"], st.AuthCalls
	rep.Ratio = ratio(rep.Worker.PerSecond, rep.Bare.PerSecond)
	return rep, ctx.Err()
}

// throughputSide is one side's database, job client and, on the mcpjobs
// side, the platform; and what its rounds measured.
type throughputSide struct {
	cfg  ThroughputConfig
	db   *DB
	jc   *store.Client
	plat *platform

	done     int
	took     time.Duration
	commands int64
	cpu      time.Duration
}

func openThroughputSide(ctx context.Context, cfg ThroughputConfig, side Side) (*throughputSide, error) {
	db, err := cfg.Redis.Open(ctx, side)
	if err != nil {
		return nil, err
	}
	s := &throughputSide{cfg: cfg, db: db, jc: store.NewClient(db.Client, store.Options{Logger: discard})}
	if side == SideMCPJobs {
		if s.plat, err = newPlatform(); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *throughputSide) close() {
	if s.plat != nil {
		s.plat.stop()
	}
	_ = s.jc.Close()
	_ = s.db.Close()
}

// runner starts a fresh worker (mcpjobs side) or bare asynq server; stop
// shuts it down.
func (s *throughputSide) runner() (start func() error, stop func(), err error) {
	if s.plat != nil {
		w, err := worker.New(s.db.Client, worker.Config{Client: s.plat.client, Concurrency: s.cfg.Concurrency, ShutdownTimeout: 5 * time.Second, Logger: discard})
		if err != nil {
			return nil, nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		return func() error { go func() { done <- w.Run(ctx) }(); return nil }, func() { cancel(); <-done }, nil
	}
	srv := asynq.NewServerFromRedisClient(s.db.Client, asynq.Config{
		Concurrency: s.cfg.Concurrency, Queues: jobs.Queues, Logger: nopLogger{},
		ShutdownTimeout: 5 * time.Second, TaskCheckInterval: 100 * time.Millisecond,
	})
	empty := asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })
	return func() error { return srv.Start(empty) }, srv.Shutdown, nil
}

// round queues n jobs, then runs them and adds what it measured.
func (s *throughputSide) round(ctx context.Context, n int, timeout time.Duration) error {
	if err := fill(ctx, n, func(ctx context.Context) error {
		_, err := s.jc.Enqueue(ctx, owner, dagPayload)
		return err
	}); err != nil {
		return fmt.Errorf("queue %d jobs: %w", n, err)
	}
	start, stop, err := s.runner()
	if err != nil {
		return err
	}
	before, err := readRedisLoad(ctx, s.db.Client)
	if err != nil {
		return err
	}
	began := time.Now()
	if err := start(); err != nil {
		return err
	}
	ended, err := waitCompleted(ctx, s.db.Client, s.done+n, timeout)
	if err != nil {
		stop()
		return err
	}
	after, err := readRedisLoad(ctx, s.db.Client)
	stop()
	if err != nil {
		return err
	}
	s.done += n
	s.took += ended.Sub(began)
	s.commands += after.commands - before.commands
	s.cpu += after.cpu - before.cpu
	return nil
}

// check verifies that every job completed, none failed or waits to retry.
func (s *throughputSide) check(n int) error {
	info, err := asynq.NewInspectorFromRedisClient(s.db.Client).GetQueueInfo(jobs.QueueInteractive)
	if err != nil {
		return err
	}
	if info.Completed != n || info.Archived != 0 || info.Retry != 0 {
		return fmt.Errorf("after the run: %d completed, %d failed, %d to retry; want %d completed", info.Completed, info.Archived, info.Retry, n)
	}
	return nil
}

func (s *throughputSide) run() ThroughputRun {
	r := ThroughputRun{Jobs: s.done, Seconds: round3(s.took.Seconds())}
	if s.took > 0 && s.done > 0 {
		r.PerSecond = round3(float64(s.done) / s.took.Seconds())
		r.RedisCommandsPerJob = round3(float64(s.commands) / float64(s.done))
		r.RedisCPUPerJob = round3(float64(s.cpu.Microseconds()) / float64(s.done))
	}
	return r
}

// completedKey is asynq's sorted set of the completed tasks of the
// interactive queue (asynq internal/base.CompletedKey), read with ZCARD
// because the Inspector's queue statistics cost far more per poll.
var completedKey = "asynq:{" + jobs.QueueInteractive + "}:completed"

// waitCompleted polls until n jobs have completed and answers when it saw
// the last one.
func waitCompleted(ctx context.Context, rdb redis.UniversalClient, n int, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		got, err := rdb.ZCard(ctx, completedKey).Result()
		if err != nil {
			return time.Time{}, err
		}
		if got >= int64(n) {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("only %d of %d jobs completed within %v", got, n, timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// redisLoad is what Redis has done since it started.
type redisLoad struct {
	commands int64
	cpu      time.Duration
}

// readRedisLoad reads INFO stats' total_commands_processed and INFO cpu's
// used_cpu_sys and used_cpu_user.
func readRedisLoad(ctx context.Context, rdb redis.UniversalClient) (redisLoad, error) {
	var l redisLoad
	var seconds float64
	for _, section := range []string{"stats", "cpu"} {
		info, err := rdb.Info(ctx, section).Result()
		if err != nil {
			return l, err
		}
		for line := range strings.SplitSeq(info, "\n") {
			name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok {
				continue
			}
			switch name {
			case "total_commands_processed":
				l.commands, _ = strconv.ParseInt(v, 10, 64)
			case "used_cpu_sys", "used_cpu_user":
				f, _ := strconv.ParseFloat(v, 64)
				seconds += f
			}
		}
	}
	l.cpu = time.Duration(seconds * float64(time.Second))
	return l, nil
}
