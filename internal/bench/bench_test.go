package bench_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mcpjobs/mcpjobs/internal/bench"
	"github.com/mcpjobs/mcpjobs/internal/redistest"
)

// setup gives each side a Redis of its own and every scenario tiny sizes.
func setup(t *testing.T) bench.Config {
	t.Helper()
	opt := func() asynq.RedisConnOpt {
		o, err := asynq.ParseRedisURI(redistest.Start(t).URL)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	return bench.Config{
		Redis:      bench.Redis{MCPJobs: opt(), Baseline: opt(), Flush: true},
		Enqueue:    bench.EnqueueConfig{Callers: 2, Duration: 300 * time.Millisecond, Rounds: 2},
		Throughput: bench.ThroughputConfig{Jobs: 200, Concurrency: 8, Timeout: 30 * time.Second},
		Wakeup:     bench.WakeupConfig{Waits: 10, PollInterval: 20 * time.Millisecond},
		Latency:    bench.LatencyConfig{Calls: 5, Latency: 5 * time.Millisecond, IdleWindow: 300 * time.Millisecond},
		Memory:     bench.MemoryConfig{Jobs: 200},
		List:       bench.ListConfig{Jobs: 300, Pages: 5},
		TokenStorm: bench.TokenStormConfig{Replicas: 2, InFlight: 2, Expiries: 1, Phase: 100 * time.Millisecond},
	}
}

// needsMemoryUsage skips a test on a Redis without MEMORY USAGE (the
// embedded fallback).
func needsMemoryUsage(t *testing.T, cfg bench.Config) {
	t.Helper()
	db, err := cfg.Redis.Open(t.Context(), bench.SideMCPJobs)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Client.Do(t.Context(), "MEMORY", "USAGE", "none").Err(); err != nil && !strings.Contains(err.Error(), "nil") {
		t.Skipf("this Redis has no MEMORY USAGE: %v", err)
	}
}

func checkEnqueue(t *testing.T, r *bench.EnqueueReport) {
	t.Helper()
	for name, side := range map[string]struct {
		calls, errors int64
		perSecond     float64
		p50           float64
	}{
		"mcp":           {r.MCP.Calls, r.MCP.Errors, r.MCP.PerSecond, r.MCP.Latency.P50},
		"bare":          {r.Bare.Calls, r.Bare.Errors, r.Bare.PerSecond, r.Bare.Latency.P50},
		"jobs client":   {r.JobsClient.Calls, r.JobsClient.Errors, r.JobsClient.PerSecond, r.JobsClient.Latency.P50},
		"mcp-go client": {r.MCPGoClient.Calls, r.MCPGoClient.Errors, r.MCPGoClient.PerSecond, r.MCPGoClient.Latency.P50},
		"no-op tool":    {r.NoopTool.Calls, r.NoopTool.Errors, r.NoopTool.PerSecond, r.NoopTool.Latency.P50},
	} {
		if side.calls == 0 || side.errors != 0 || side.perSecond <= 0 || side.p50 <= 0 {
			t.Errorf("enqueue, %s: %+v (first error %q %q)", name, side, r.MCP.FirstError, r.Bare.FirstError)
		}
	}
	if r.ThroughputRatio <= 0 || r.P50Ratio <= 0 || r.JobsClientRatio <= 0 {
		t.Errorf("enqueue ratios: %+v", r)
	}
}

func checkThroughput(t *testing.T, r *bench.ThroughputReport) {
	t.Helper()
	if r.Worker.Jobs != 200 || r.Worker.PerSecond <= 0 || r.Bare.PerSecond <= 0 || r.Ratio <= 0 {
		t.Errorf("throughput: %+v", r)
	}
	if r.PlatformCalls != 200 || r.AuthCalls != 1 {
		t.Errorf("throughput: %d platform calls and %d auth calls; want 200 and 1", r.PlatformCalls, r.AuthCalls)
	}
}

func checkWakeup(t *testing.T, r *bench.WakeupReport) {
	t.Helper()
	for _, run := range []bench.WakeupRun{r.PubSub, r.Polling} {
		if run.Wake.Count != 10 || run.Unfinished != 0 || run.Wake.P50 <= 0 || run.EndToEnd.P50 < run.Wake.P50 {
			t.Errorf("wakeup, %s: %+v", run.Mode, run)
		}
	}
	if r.P50Ratio <= 0 || r.P99Ratio <= 0 {
		t.Errorf("wakeup ratios: %+v", r)
	}
}

func checkLatency(t *testing.T, r *bench.LatencyReport) {
	t.Helper()
	for name, p := range map[string]bench.Percentiles{"inline": r.MCPJobs.Inline, "submit + get_job": r.MCPJobs.SubmitGetJob, "bare": r.Bare.EnqueueInspect} {
		if p.Count != 5 || p.P50 <= 0 || p.P99 < p.P50 {
			t.Errorf("latency, %s: %+v", name, p)
		}
	}
	// An idle worker may make no command in a short window; asynq
	// polling every 100 ms makes dozens.
	if l := r.MCPJobs.Idle; l.Seconds <= 0 || l.CommandsPerSecond < 0 || l.ByCommand["info"] != 0 {
		t.Errorf("latency, idle mcpjobs: %+v", l)
	}
	if l := r.Bare.Idle; l.Seconds <= 0 || l.ByCommand["evalsha"] <= 0 || l.ByCommand["info"] != 0 {
		t.Errorf("latency, idle bare: %+v", l)
	}
	if r.P50Ratio <= 0 || r.P99Ratio <= 0 {
		t.Errorf("latency ratios: %+v", r)
	}
}

func checkMemory(t *testing.T, r *bench.MemoryReport) {
	t.Helper()
	for _, run := range []bench.MemoryRun{r.MCPJobs, r.Bare} {
		if run.PerJob <= 0 || run.TaskHash <= 0 || run.PendingList <= 0 || run.KeysPerJob < run.TaskHash {
			t.Errorf("memory: %+v", run)
		}
	}
	if r.MCPJobs.OwnerIndex <= 0 || r.Bare.OwnerIndex != 0 {
		t.Errorf("memory, owner index: mcpjobs %v, bare %v; want > 0 and 0", r.MCPJobs.OwnerIndex, r.Bare.OwnerIndex)
	}
	if r.Ratio <= 0 || r.KeysRatio <= 0 {
		t.Errorf("memory ratios: %+v", r)
	}
}

func checkTokenStorm(t *testing.T, r *bench.TokenStormReport) {
	t.Helper()
	if r.Shared.AuthCalls != 2 || r.Shared.FailedCalls != 0 || r.Shared.Calls == 0 {
		t.Errorf("token storm, shared: %+v; want 2 auth calls (1 expiry) and no failure", r.Shared)
	}
}

func checkList(t *testing.T, r *bench.ListReport) {
	t.Helper()
	for name, p := range map[string]bench.Percentiles{"page": r.Page, "filtered": r.Filtered, "per job": r.PerJob} {
		if p.Count != 5 || p.P50 <= 0 || p.P99 < p.P50 {
			t.Errorf("list, %s: %+v", name, p)
		}
	}
	if r.Jobs != 300 || r.Limit != 50 || r.Ratio <= 0 {
		t.Errorf("list: %+v", r)
	}
}

func TestScenarios(t *testing.T) {
	cases := []struct {
		scenario string
		memory   bool
		check    func(*testing.T, any)
	}{
		{"enqueue", false, func(t *testing.T, r any) { checkEnqueue(t, r.(*bench.EnqueueReport)) }},
		{"throughput", false, func(t *testing.T, r any) { checkThroughput(t, r.(*bench.ThroughputReport)) }},
		{"wakeup", false, func(t *testing.T, r any) { checkWakeup(t, r.(*bench.WakeupReport)) }},
		{"latency", false, func(t *testing.T, r any) { checkLatency(t, r.(*bench.LatencyReport)) }},
		{"memory", true, func(t *testing.T, r any) { checkMemory(t, r.(*bench.MemoryReport)) }},
		{"list", false, func(t *testing.T, r any) { checkList(t, r.(*bench.ListReport)) }},
		{"token-storm", false, func(t *testing.T, r any) { checkTokenStorm(t, r.(*bench.TokenStormReport)) }},
		{"all", true, func(t *testing.T, r any) {
			all := r.(*bench.AllReport)
			if all.Env.CPUs == 0 || all.Env.Redis == "" {
				t.Errorf("all: env %+v", all.Env)
			}
			checkEnqueue(t, all.Enqueue)
			checkThroughput(t, all.Throughput)
			checkWakeup(t, all.Wakeup)
			checkLatency(t, all.Latency)
			checkMemory(t, all.Memory)
			checkList(t, all.List)
			checkTokenStorm(t, all.TokenStorm)
		}},
	}
	for _, c := range cases {
		t.Run(c.scenario, func(t *testing.T) {
			cfg := setup(t)
			if c.memory {
				needsMemoryUsage(t, cfg)
			}
			rep, err := bench.Run(t.Context(), c.scenario, cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, rep)
		})
	}
}

func TestUnknownScenario(t *testing.T) {
	if _, err := bench.Run(t.Context(), "nonsense", bench.Config{}); err == nil || !strings.Contains(err.Error(), "enqueue") {
		t.Errorf("got %v; want an error that lists the scenarios", err)
	}
}

// TestRedisKeepsOthersData: without Flush, a database that holds keys is
// refused, and a side removes only the keys it wrote.
func TestRedisKeepsOthersData(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	opt, err := asynq.ParseRedisURI(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	r := bench.Redis{MCPJobs: opt, Baseline: opt}
	ctx := context.Background()
	if err := rdb.Set(ctx, "theirs", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open(ctx, bench.SideMCPJobs); err == nil || !strings.Contains(err.Error(), "--flush") {
		t.Fatalf("a database with keys: %v; want an error that says --flush", err)
	}
	if n, _ := rdb.Exists(ctx, "theirs").Result(); n != 1 {
		t.Fatal("Open removed a key it did not write")
	}

	if err := rdb.Del(ctx, "theirs").Err(); err != nil {
		t.Fatal(err)
	}
	db, err := r.Open(ctx, bench.SideBaseline)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"asynq:{interactive}:pending", "mcpjobs:owner:local:jobs", "theirs-later"} {
		if err := rdb.Set(ctx, k, "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "theirs-later" {
		t.Errorf("after Close: %v; want only theirs-later", keys)
	}
}

func TestWithDB(t *testing.T) {
	opt, err := bench.WithDB(asynq.RedisClientOpt{Addr: "127.0.0.1:6379", DB: 0}, 14)
	if err != nil || opt.(asynq.RedisClientOpt).DB != 14 {
		t.Errorf("WithDB: %+v, %v", opt, err)
	}
	if _, err := bench.WithDB(asynq.RedisClusterClientOpt{}, 14); err == nil {
		t.Error("WithDB accepted a cluster")
	}
}
