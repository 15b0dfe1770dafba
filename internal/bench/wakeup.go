package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	mcpclient "github.com/mark3labs/mcp-go/client"

	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/mcp"
	"github.com/mcpjobs/mcpjobs/worker"
)

// WakeupConfig sets up the wakeup scenario.
type WakeupConfig struct {
	// Waits is the number of sequential tool calls on each side.
	// Default: 200.
	Waits int
	// PollInterval is how often the polling side asks get_job.
	// Default: 100ms.
	PollInterval time.Duration
	// Redis gives each side its database. Required.
	Redis Redis
}

func (c WakeupConfig) withDefaults() WakeupConfig {
	if c.Waits <= 0 {
		c.Waits = 200
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 100 * time.Millisecond
	}
	return c
}

// WakeupRun is one side's figures.
type WakeupRun struct {
	Mode string `json:"mode"`
	// Wake is the completion-to-caller latency: from the moment the
	// platform finished answering the job's call to the moment the tool
	// call that waited (or the get_job that polled) returned the
	// completed job to the MCP client.
	Wake Percentiles `json:"completion_to_caller"`
	// EndToEnd is from the first tool call to the answer with the result.
	EndToEnd Percentiles `json:"call_to_result"`
	// Unfinished counts calls that answered without a final state.
	Unfinished int `json:"unfinished"`
}

// WakeupReport compares a tool call that waits (woken by the workers'
// pub/sub announcement) with a client that polls get_job.
type WakeupReport struct {
	Scenario       string  `json:"scenario"`
	Waits          int     `json:"waits_per_side"`
	PollIntervalMS float64 `json:"poll_interval_ms"`
	// P50Ratio and P99Ratio are polling over pub/sub completion-to-caller
	// latency: how many times sooner the waiting call learns of the end.
	P50Ratio float64   `json:"p50_ratio_polling_over_pubsub"`
	P99Ratio float64   `json:"p99_ratio_polling_over_pubsub"`
	PubSub   WakeupRun `json:"pubsub"`
	Polling  WakeupRun `json:"polling"`
}

// Wakeup runs Waits sequential code-to-DAG tool calls on each side, against
// a worker and the simulator with no latency:
//
//   - pubsub: execute_code_to_dag with wait_seconds 10, on an MCP server
//     whose store.Client re-reads only every minute, so only the workers'
//     announcement can end the wait early;
//   - polling: execute_code_to_dag with wait_seconds 0, then get_job every
//     PollInterval until the job has ended, the first get_job after a
//     random fraction of the interval (a poller's phase is unrelated to
//     when a job ends).
//
// The simulator's handler is wrapped to note when it finished answering
// each call; one job runs at a time, so that is the end of this job's work.
func Wakeup(ctx context.Context, cfg WakeupConfig) (*WakeupReport, error) {
	cfg = cfg.withDefaults()
	rep := &WakeupReport{Scenario: "wakeup", Waits: cfg.Waits, PollIntervalMS: ms(cfg.PollInterval)}
	var err error
	if rep.PubSub, err = wakeupSide(ctx, cfg, SideMCPJobs); err != nil {
		return nil, fmt.Errorf("pub/sub side: %w", err)
	}
	if rep.Polling, err = wakeupSide(ctx, cfg, SideBaseline); err != nil {
		return nil, fmt.Errorf("polling side: %w", err)
	}
	rep.P50Ratio = ratio(rep.Polling.Wake.P50, rep.PubSub.Wake.P50)
	rep.P99Ratio = ratio(rep.Polling.Wake.P99, rep.PubSub.Wake.P99)
	return rep, ctx.Err()
}

func wakeupSide(ctx context.Context, cfg WakeupConfig, side Side) (WakeupRun, error) {
	run := WakeupRun{Mode: "pubsub"}
	if side == SideBaseline {
		run.Mode = "polling"
	}
	db, err := cfg.Redis.Open(ctx, side)
	if err != nil {
		return run, err
	}
	defer db.Close()
	plat, err := newPlatform()
	if err != nil {
		return run, err
	}
	defer plat.stop()
	// The worker looks for new jobs every 10ms when idle, so that the runs
	// do not mostly wait for a pickup; the pickup is not measured anyway.
	w, err := worker.New(db.Client, worker.Config{Client: plat.client, QueueCheckInterval: 10 * time.Millisecond, ShutdownTimeout: 5 * time.Second, Logger: discard})
	if err != nil {
		return run, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	jc := store.NewClient(db.Client, store.Options{RecheckInterval: time.Minute, Logger: discard})
	defer jc.Close()
	srv, err := mcp.New(mcp.Options{Jobs: jc, Logger: discard})
	if err != nil {
		return run, err
	}
	defer srv.Close()
	url, stop, err := serve(srv.HTTPHandler())
	if err != nil {
		return run, err
	}
	defer stop()
	c, err := dialMCP(ctx, url+"/mcp")
	if err != nil {
		return run, fmt.Errorf("connect MCP client: %w", err)
	}
	defer c.Close()

	// One call first, uncounted: the first job fetches the platform token
	// and opens the connections.
	if _, _, err := wakeupOnce(ctx, c, plat, side, cfg.PollInterval); err != nil {
		return run, err
	}
	var wake, e2e = make([]time.Duration, 0, cfg.Waits), make([]time.Duration, 0, cfg.Waits)
	for range cfg.Waits {
		w, total, err := wakeupOnce(ctx, c, plat, side, cfg.PollInterval)
		if err != nil {
			return run, err
		}
		if w < 0 {
			run.Unfinished++
			continue
		}
		wake, e2e = append(wake, w), append(e2e, total)
	}
	run.Wake, run.EndToEnd = percentiles(wake), percentiles(e2e)
	return run, ctx.Err()
}

// wakeupOnce runs one job and answers its completion-to-caller and
// end-to-end latencies; wake is negative when the job did not end in time.
func wakeupOnce(ctx context.Context, c *mcpclient.Client, plat *platform, side Side, every time.Duration) (wake, total time.Duration, err error) {
	callsBefore, _ := plat.lastDAG()
	start := time.Now()
	var v toolView
	if side == SideMCPJobs {
		v, err = callTool(ctx, c, "execute_code_to_dag", withArgs(dagArgs, map[string]any{"wait_seconds": 10}))
	} else {
		v, err = callTool(ctx, c, "execute_code_to_dag", withArgs(dagArgs, map[string]any{"wait_seconds": 0}))
		next := time.Duration(rand.Int64N(int64(every)))
		deadline := start.Add(10 * time.Second)
		for err == nil && !v.State.Final() && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return 0, 0, ctx.Err()
			case <-time.After(next):
			}
			next = every
			v, err = callTool(ctx, c, "get_job", map[string]any{"job_id": v.JobID})
		}
	}
	answered := time.Now()
	if err != nil {
		return 0, 0, err
	}
	if !v.State.Final() {
		return -1, 0, nil
	}
	if v.State != jobs.StateCompleted {
		return 0, 0, fmt.Errorf("job %s ended %s, want completed", v.JobID, v.State)
	}
	calls, done := plat.lastDAG()
	if calls != callsBefore+1 {
		return 0, 0, fmt.Errorf("job %s: the platform saw %d calls, want 1", v.JobID, calls-callsBefore)
	}
	return answered.Sub(done), answered.Sub(start), nil
}
