package bench

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Scenarios are the scenario names Run accepts, besides "all", in the
// order "all" runs them.
var Scenarios = []string{"enqueue", "throughput", "wakeup", "latency", "memory", "list", "token-storm"}

// Config holds the settings of every scenario.
type Config struct {
	// Redis gives each side of a scenario its database; it replaces the
	// Redis of each scenario's config. Required.
	Redis      Redis
	Enqueue    EnqueueConfig
	Throughput ThroughputConfig
	Wakeup     WakeupConfig
	Latency    LatencyConfig
	Memory     MemoryConfig
	List       ListConfig
	// TokenStorm's NewRedis, when nil, opens the mcpjobs side's database.
	TokenStorm TokenStormConfig
	// Logger receives a line as each scenario starts. Default: discard.
	Logger *slog.Logger
}

// AllReport is every scenario's report, keyed by scenario.
type AllReport struct {
	Env        Env               `json:"env"`
	Enqueue    *EnqueueReport    `json:"enqueue"`
	Throughput *ThroughputReport `json:"throughput"`
	Wakeup     *WakeupReport     `json:"wakeup"`
	Latency    *LatencyReport    `json:"latency"`
	Memory     *MemoryReport     `json:"memory"`
	List       *ListReport       `json:"list"`
	TokenStorm *TokenStormReport `json:"token-storm"`
}

// Env describes where the figures were measured.
type Env struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
	Redis      string `json:"redis"`
}

// Run runs one scenario, or "all" of them, and answers its report.
func Run(ctx context.Context, scenario string, cfg Config) (any, error) {
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	if scenario == "all" {
		return runAll(ctx, cfg)
	}
	cfg.Logger.InfoContext(ctx, "bench: running", slog.String("scenario", scenario))
	var (
		rep any
		err error
	)
	switch scenario {
	case "enqueue":
		c := cfg.Enqueue
		c.Redis = cfg.Redis
		rep, err = Enqueue(ctx, c)
	case "throughput":
		c := cfg.Throughput
		c.Redis = cfg.Redis
		rep, err = Throughput(ctx, c)
	case "wakeup":
		c := cfg.Wakeup
		c.Redis = cfg.Redis
		rep, err = Wakeup(ctx, c)
	case "latency":
		c := cfg.Latency
		c.Redis = cfg.Redis
		rep, err = Latency(ctx, c)
	case "memory":
		c := cfg.Memory
		c.Redis = cfg.Redis
		rep, err = Memory(ctx, c)
	case "list":
		c := cfg.List
		c.Redis = cfg.Redis
		rep, err = List(ctx, c)
	case "token-storm":
		c := cfg.TokenStorm
		if c.NewRedis == nil {
			db, oerr := cfg.Redis.Open(ctx, SideMCPJobs)
			if oerr != nil {
				return nil, fmt.Errorf("%s: %w", scenario, oerr)
			}
			defer db.Close()
			c.NewRedis = db.NewClient
		}
		rep, err = TokenStorm(ctx, c)
	default:
		return nil, fmt.Errorf("bench: unknown scenario %q (want one of %s, all)", scenario, strings.Join(Scenarios, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", scenario, err)
	}
	return rep, nil
}

func runAll(ctx context.Context, cfg Config) (*AllReport, error) {
	rep := &AllReport{Env: Env{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version()}}
	if db, err := cfg.Redis.Open(ctx, SideMCPJobs); err == nil {
		rep.Env.Redis = redisVersion(ctx, db.Client)
		_ = db.Close()
	}
	for _, s := range Scenarios {
		r, err := Run(ctx, s, cfg)
		if err != nil {
			return nil, err
		}
		switch r := r.(type) {
		case *EnqueueReport:
			rep.Enqueue = r
		case *ThroughputReport:
			rep.Throughput = r
		case *WakeupReport:
			rep.Wakeup = r
		case *LatencyReport:
			rep.Latency = r
		case *MemoryReport:
			rep.Memory = r
		case *ListReport:
			rep.List = r
		case *TokenStormReport:
			rep.TokenStorm = r
		}
	}
	return rep, nil
}

// redisVersion reads redis_version from INFO server.
func redisVersion(ctx context.Context, rdb redis.UniversalClient) string {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return ""
}
