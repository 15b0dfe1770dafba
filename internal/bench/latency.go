package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/mcp"
	"github.com/mcpjobs/mcpjobs/worker"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// LatencyConfig sets up the latency scenario.
type LatencyConfig struct {
	// Calls is the number of sequential calls of each mode. Default: 100.
	Calls int
	// Latency is the time the platform takes per call. Default: 50ms.
	Latency time.Duration
	// IdleWindow is how long the idle replicas' Redis commands are
	// counted. Default: 3s.
	IdleWindow time.Duration
	// Replicas is the number of worker replicas (and bare asynq servers),
	// each with its own Redis connection. Default: 1.
	Replicas int
	// Redis gives each side its database. Required.
	Redis Redis
}

func (c LatencyConfig) withDefaults() LatencyConfig {
	if c.Calls <= 0 {
		c.Calls = 100
	}
	if c.Latency <= 0 {
		c.Latency = 50 * time.Millisecond
	}
	if c.IdleWindow <= 0 {
		c.IdleWindow = 3 * time.Second
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	return c
}

// IdleLoad is what an idle replica asks of Redis: commands per second,
// those inside Lua scripts included (INFO commandstats deltas over a
// window with nothing enqueued), in all and by command.
type IdleLoad struct {
	Seconds           float64            `json:"seconds"`
	CommandsPerSecond float64            `json:"commands_per_s"`
	ByCommand         map[string]float64 `json:"by_command_per_s"`
}

// LatencyMCPJobs is the mcpjobs side's figures.
type LatencyMCPJobs struct {
	// Inline is the overhead over the platform's time of
	// coverage_aspect_analysis with wait_seconds 10: call to answer with
	// the result, minus the simulator handler's time for the job's call.
	Inline Percentiles `json:"inline_wait_overhead"`
	// SubmitGetJob is the same for coverage_aspect_analysis with
	// wait_seconds 0 followed by get_job with wait_seconds 10.
	SubmitGetJob Percentiles `json:"submit_get_job_overhead"`
	// Platform is the simulator's own time per call (its handler's, the
	// configured latency plus its work), which the overheads leave out.
	Platform Percentiles `json:"platform_time"`
	// CommandsPerJob is the Redis commands per job while the calls ran
	// (INFO commandstats; the MCP side's reads and waits included).
	CommandsPerJob float64 `json:"redis_commands_per_job"`
	// Idle is the idle replicas' Redis load, all of them.
	Idle IdleLoad `json:"idle_replicas"`
}

// LatencyBare is the baseline side's figures.
type LatencyBare struct {
	// EnqueueInspect is the overhead over the platform's time of
	// asynq.Client.EnqueueContext followed by Inspector.GetTaskInfo every
	// millisecond until the task completed.
	EnqueueInspect Percentiles `json:"enqueue_inspect_overhead"`
	// Platform is the simulator's own time per call.
	Platform Percentiles `json:"platform_time"`
	// CommandsPerJob is the Redis commands per job while the calls ran
	// (the caller's Inspector reads every millisecond included).
	CommandsPerJob float64 `json:"redis_commands_per_job"`
	// Idle is the idle asynq.Servers' Redis load, all of them.
	Idle IdleLoad `json:"idle_servers"`
}

// LatencyReport compares the time a short job adds to the platform's when
// a caller finds the fleet idle, and what an idle replica costs Redis.
type LatencyReport struct {
	Scenario          string  `json:"scenario"`
	Calls             int     `json:"calls_per_mode"`
	Replicas          int     `json:"replicas"`
	PlatformLatencyMS float64 `json:"platform_latency_ms"`
	// QueueCheckIntervalMS is the bare asynq server's TaskCheckInterval
	// (the worker's idle check before long polling).
	QueueCheckIntervalMS float64        `json:"bare_task_check_interval_ms"`
	MCPJobs              LatencyMCPJobs `json:"mcpjobs"`
	Bare                 LatencyBare    `json:"bare_asynq"`
	// P50Ratio and P99Ratio are the inline wait's overhead over the bare
	// caller's.
	P50Ratio float64 `json:"p50_ratio_inline_over_bare"`
	P99Ratio float64 `json:"p99_ratio_inline_over_bare"`
}

// bareCheckInterval is the bare asynq server's TaskCheckInterval: the
// worker's before it long-polled.
const bareCheckInterval = 100 * time.Millisecond

// Latency runs Calls sequential aspect jobs per mode on each side, one at a
// time, against the simulator taking Latency per call and one replica with
// nothing else to do:
//
//   - mcpjobs: worker.Worker with its defaults, and MCP calls over
//     streamable HTTP: coverage_aspect_analysis waiting inline
//     (wait_seconds 10), and alternately the same with wait_seconds 0
//     followed by get_job waiting (wait_seconds 10);
//   - bare asynq: an asynq.Server (TaskCheckInterval 100ms) whose handler
//     makes the same platform call and writes its data as the result, and a
//     caller that enqueues with asynq.Client and reads the task with the
//     Inspector every millisecond until it completed.
//
// Each figure is the call's time minus the platform's: the time the
// simulator's HTTP handler took over the job's one call (Latency plus the
// simulator's own work, about 2 ms for this aspect analysis). Then each side's replica is
// left idle for IdleWindow and its Redis commands counted.
func Latency(ctx context.Context, cfg LatencyConfig) (*LatencyReport, error) {
	cfg = cfg.withDefaults()
	rep := &LatencyReport{Scenario: "latency", Calls: cfg.Calls, Replicas: cfg.Replicas, PlatformLatencyMS: ms(cfg.Latency), QueueCheckIntervalMS: ms(bareCheckInterval)}
	var err error
	if rep.MCPJobs, err = latencyMCPJobs(ctx, cfg); err != nil {
		return nil, fmt.Errorf("mcpjobs side: %w", err)
	}
	if rep.Bare, err = latencyBare(ctx, cfg); err != nil {
		return nil, fmt.Errorf("baseline side: %w", err)
	}
	rep.P50Ratio = ratio(rep.MCPJobs.Inline.P50, rep.Bare.EnqueueInspect.P50)
	rep.P99Ratio = ratio(rep.MCPJobs.Inline.P99, rep.Bare.EnqueueInspect.P99)
	return rep, ctx.Err()
}

// aspectArgs are aspectPayload as tool arguments.
var aspectArgs = map[string]any{"coverage_id": aspectPayload.CoverageID, "bbox": aspectPayload.BBox, "scale_m": aspectPayload.ScaleM}

func latencyMCPJobs(ctx context.Context, cfg LatencyConfig) (LatencyMCPJobs, error) {
	var out LatencyMCPJobs
	db, err := cfg.Redis.Open(ctx, SideMCPJobs)
	if err != nil {
		return out, err
	}
	defer db.Close()
	plat, err := newPlatform()
	if err != nil {
		return out, err
	}
	defer plat.stop()
	plat.sim.SetLatency(cfg.Latency, 0)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, cfg.Replicas)
	started := 0
	var conns []redis.UniversalClient
	defer func() {
		cancel()
		for range started {
			<-done
		}
		for _, c := range conns { // after the workers stopped
			_ = c.Close()
		}
	}()
	for range cfg.Replicas {
		rdb := db.NewClient()
		conns = append(conns, rdb)
		w, err := worker.New(rdb, worker.Config{Client: plat.client, ShutdownTimeout: 5 * time.Second, Logger: discard})
		if err != nil {
			return out, err
		}
		go func() { done <- w.Run(runCtx) }()
		started++
	}

	jc := store.NewClient(db.Client, store.Options{Logger: discard})
	defer jc.Close()
	srv, err := mcp.New(mcp.Options{Jobs: jc, Logger: discard})
	if err != nil {
		return out, err
	}
	defer srv.Close()
	url, stop, err := serve(srv.HTTPHandler())
	if err != nil {
		return out, err
	}
	defer stop()
	c, err := dialMCP(ctx, url+"/mcp")
	if err != nil {
		return out, fmt.Errorf("connect MCP client: %w", err)
	}
	defer c.Close()

	// One call of each mode first, uncounted: the first job fetches the
	// platform token and opens the connections.
	for _, inline := range []bool{true, false} {
		if _, _, err := latencyCall(ctx, c, plat, inline); err != nil {
			return out, err
		}
	}
	var inline, split, platform []time.Duration
	before, err := commandStats(ctx, db.Client)
	if err != nil {
		return out, err
	}
	for range cfg.Calls {
		for _, mode := range []bool{true, false} {
			d, took, err := latencyCall(ctx, c, plat, mode)
			if err != nil {
				return out, err
			}
			platform = append(platform, took)
			if mode {
				inline = append(inline, d-took)
			} else {
				split = append(split, d-took)
			}
		}
	}
	out.Inline, out.SubmitGetJob, out.Platform = percentiles(inline), percentiles(split), percentiles(platform)
	if out.CommandsPerJob, err = commandsPerJob(ctx, db.Client, before, len(platform)); err != nil {
		return out, err
	}
	out.Idle, err = idleLoad(ctx, db.Client, cfg.IdleWindow)
	return out, err
}

// latencyCall runs one aspect job through MCP and answers how long it took
// to learn its result, and how long the platform took over its call.
func latencyCall(ctx context.Context, c *mcpclient.Client, plat *platform, inline bool) (total, took time.Duration, err error) {
	callsBefore, _ := plat.lastAspect()
	start := time.Now()
	var v toolView
	if inline {
		v, err = callTool(ctx, c, "coverage_aspect_analysis", withArgs(aspectArgs, map[string]any{"wait_seconds": 10}))
	} else {
		v, err = callTool(ctx, c, "coverage_aspect_analysis", withArgs(aspectArgs, map[string]any{"wait_seconds": 0}))
		if err == nil && !v.State.Final() {
			v, err = callTool(ctx, c, "get_job", map[string]any{"job_id": v.JobID, "wait_seconds": 10})
		}
	}
	total = time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if v.State != jobs.StateCompleted {
		return 0, 0, fmt.Errorf("job %s is %s after %v, want completed", v.JobID, v.State, total)
	}
	took, err = plat.oneAspect(callsBefore)
	return total, took, err
}

// oneAspect checks that the platform answered one aspect call since it had
// answered callsBefore, and answers how long it took over it.
func (p *platform) oneAspect(callsBefore int64) (time.Duration, error) {
	calls, took := p.lastAspect()
	if calls != callsBefore+1 {
		return 0, fmt.Errorf("the platform saw %d aspect calls for one job, want 1", calls-callsBefore)
	}
	return took, nil
}

func latencyBare(ctx context.Context, cfg LatencyConfig) (LatencyBare, error) {
	var out LatencyBare
	db, err := cfg.Redis.Open(ctx, SideBaseline)
	if err != nil {
		return out, err
	}
	defer db.Close()
	plat, err := newPlatform()
	if err != nil {
		return out, err
	}
	defer plat.stop()
	plat.sim.SetLatency(cfg.Latency, 0)
	tok, err := plat.client.Authenticate(ctx)
	if err != nil {
		return out, err
	}
	srvCfg := asynq.Config{
		Concurrency: 20, Queues: jobs.Queues, Logger: nopLogger{}, ShutdownTimeout: 5 * time.Second,
		TaskCheckInterval: bareCheckInterval, DelayedTaskCheckInterval: time.Second,
	}
	handler := asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var p jobs.AspectPayload
		if err := json.Unmarshal(t.Payload(), &p); err != nil {
			return err
		}
		resp, err := plat.client.Call(ctx, intranet.OpAspect, tok.Value, p.WithDefaults())
		if err != nil {
			return err
		}
		_, err = t.ResultWriter().Write(resp.Data)
		return err
	})
	for range cfg.Replicas {
		rdb := db.NewClient()
		defer rdb.Close()
		srv := asynq.NewServerFromRedisClient(rdb, srvCfg)
		if err := srv.Start(handler); err != nil {
			return out, err
		}
		defer srv.Shutdown()
	}
	client := asynq.NewClientFromRedisClient(db.Client)
	defer client.Close()
	inspector := asynq.NewInspectorFromRedisClient(db.Client)
	body, err := json.Marshal(aspectPayload)
	if err != nil {
		return out, err
	}
	opts := bareOptions(jobs.TypeAspect)
	call := func() (total, took time.Duration, err error) {
		callsBefore, _ := plat.lastAspect()
		start := time.Now()
		info, err := client.EnqueueContext(ctx, asynq.NewTask(jobs.TypeAspect, body), opts...)
		if err != nil {
			return 0, 0, err
		}
		deadline := start.Add(10 * time.Second)
		for {
			ti, err := inspector.GetTaskInfo(info.Queue, info.ID)
			if err != nil {
				return 0, 0, err
			}
			if ti.State == asynq.TaskStateCompleted {
				total = time.Since(start)
				took, err = plat.oneAspect(callsBefore)
				return total, took, err
			}
			if time.Now().After(deadline) {
				return 0, 0, fmt.Errorf("task %s is %v after 10s, want completed", info.ID, ti.State)
			}
			select {
			case <-ctx.Done():
				return 0, 0, ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
	}
	if _, _, err := call(); err != nil { // warm-up, uncounted
		return out, err
	}
	var ds, platform []time.Duration
	before, err := commandStats(ctx, db.Client)
	if err != nil {
		return out, err
	}
	for range cfg.Calls {
		d, took, err := call()
		if err != nil {
			return out, err
		}
		ds, platform = append(ds, d-took), append(platform, took)
	}
	out.EnqueueInspect, out.Platform = percentiles(ds), percentiles(platform)
	if out.CommandsPerJob, err = commandsPerJob(ctx, db.Client, before, len(platform)); err != nil {
		return out, err
	}
	out.Idle, err = idleLoad(ctx, db.Client, cfg.IdleWindow)
	return out, err
}

// idleLoad lets the replica idle for a moment (the last job's aftermath),
// then counts the server's commands over window. The bench's own INFO
// calls are left out; nothing else may use the server meanwhile.
func idleLoad(ctx context.Context, rdb redis.UniversalClient, window time.Duration) (IdleLoad, error) {
	select {
	case <-ctx.Done():
		return IdleLoad{}, ctx.Err()
	case <-time.After(time.Second):
	}
	before, err := commandStats(ctx, rdb)
	if err != nil {
		return IdleLoad{}, err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return IdleLoad{}, ctx.Err()
	case <-time.After(window):
	}
	after, err := commandStats(ctx, rdb)
	if err != nil {
		return IdleLoad{}, err
	}
	secs := time.Since(start).Seconds()
	l := IdleLoad{Seconds: round3(secs), ByCommand: map[string]float64{}}
	var total int64
	for name, n := range after {
		if d := n - before[name]; d > 0 && name != "info" {
			total += d
			l.ByCommand[name] = round3(float64(d) / secs)
		}
	}
	l.CommandsPerSecond = round3(float64(total) / secs)
	return l, nil
}

// commandsPerJob answers the commands (but INFO) run since before, over jobs.
func commandsPerJob(ctx context.Context, rdb redis.UniversalClient, before map[string]int64, jobs int) (float64, error) {
	after, err := commandStats(ctx, rdb)
	if err != nil || jobs == 0 {
		return 0, err
	}
	var total int64
	for name, n := range after {
		if name != "info" {
			total += n - before[name]
		}
	}
	return round3(float64(total) / float64(jobs)), nil
}

// commandStats reads the calls of each command from INFO commandstats
// (commands run inside Lua scripts count under their own names).
func commandStats(ctx context.Context, rdb redis.UniversalClient) (map[string]int64, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		name, ok = strings.CutPrefix(name, "cmdstat_")
		if !ok {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				out[name], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out, nil
}
