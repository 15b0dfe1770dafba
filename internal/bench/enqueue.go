package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	mcpclient "github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/mcp"
)

// EnqueueConfig sets up the enqueue scenario.
type EnqueueConfig struct {
	// Callers is the number of concurrent callers, each with its own MCP
	// client. Default: 8.
	Callers int
	// Duration is how long each side runs, after a warm-up of a tenth of
	// it. Default: 5s.
	Duration time.Duration
	// Rounds splits Duration into rounds that alternate between the sides,
	// so that a change in the machine's load meanwhile touches both.
	// Default: 5.
	Rounds int
	// Redis gives each side its database. Required.
	Redis Redis
}

func (c EnqueueConfig) withDefaults() EnqueueConfig {
	if c.Callers <= 0 {
		c.Callers = 8
	}
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
	if c.Rounds <= 0 {
		c.Rounds = 5
	}
	return c
}

// EnqueueReport compares an MCP tool call that only enqueues with a bare
// asynq enqueue of the same task.
type EnqueueReport struct {
	Scenario string  `json:"scenario"`
	Callers  int     `json:"callers"`
	Seconds  float64 `json:"seconds_per_side"`
	// ThroughputRatio is MCP calls/s over bare enqueues/s (target ≥ 0.3).
	ThroughputRatio float64 `json:"throughput_ratio_mcp_over_bare"`
	// P50Ratio and P99Ratio are MCP latency over bare latency.
	P50Ratio float64 `json:"p50_ratio_mcp_over_bare"`
	P99Ratio float64 `json:"p99_ratio_mcp_over_bare"`
	// MCP is execute_code_to_dag with wait_seconds 0 over streamable HTTP,
	// each caller a minimal MCP client (a JSON-RPC request per POST) with
	// its own session.
	MCP rate `json:"mcp_tool_call"`
	// MCPGoClient is the same call made with mcp-go's client: its cost
	// per call, on the same cores, is the difference from MCP.
	MCPGoClient      rate    `json:"mcp_tool_call_mcpgo_client"`
	MCPGoClientRatio float64 `json:"throughput_ratio_mcpgo_client_over_bare"`
	// NoopTool is mcp-go's streamable HTTP server with default options and
	// one tool that answers at once, called as MCP is: what mcp-go and
	// net/http cost before mcpjobs does anything.
	NoopTool      rate    `json:"mcpgo_noop_tool"`
	NoopToolRatio float64 `json:"throughput_ratio_mcpgo_noop_over_bare"`
	// Bare is asynq.Client.EnqueueContext of the same task type, payload
	// and options.
	Bare rate `json:"bare_asynq"`
	// JobsClient is store.Client.Enqueue called directly, without MCP: it
	// tells the cost of mcpjobs' own enqueue (owner and time headers, the
	// owner's job index) apart from the MCP protocol's.
	JobsClient      rate    `json:"jobs_client"`
	JobsClientRatio float64 `json:"throughput_ratio_jobs_client_over_bare"`
}

// Enqueue runs Callers concurrent callers for Duration on each side, in
// alternating rounds: MCP tool calls that only enqueue (with a minimal
// client and with mcp-go's), a tool that does nothing on a bare mcp-go
// server, store.Client.Enqueue and bare asynq enqueues. No worker runs.
func Enqueue(ctx context.Context, cfg EnqueueConfig) (*EnqueueReport, error) {
	cfg = cfg.withDefaults()
	rep := &EnqueueReport{Scenario: "enqueue", Callers: cfg.Callers, Seconds: cfg.Duration.Seconds()}
	m, closeMCP, err := enqueueMCP(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("mcpjobs side: %w", err)
	}
	defer closeMCP()
	noop, closeNoop, err := noopMCP(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("mcp-go side: %w", err)
	}
	defer closeNoop()
	bareCall, closeBare, err := enqueueBare(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("baseline side: %w", err)
	}
	defer closeBare()

	sides := []struct {
		name string
		call func(context.Context, int) error
		load load
	}{
		{name: "mcpjobs side", call: m.call},
		{name: "baseline side", call: bareCall},
		{name: "mcpjobs side with mcp-go's client", call: m.callMCPGo},
		{name: "mcp-go no-op tool", call: noop},
		{name: "store.Client", call: m.direct},
	}
	for _, s := range sides {
		if warm := hammer(ctx, cfg.Callers, cfg.Duration/10, s.call); warm.errors > 0 {
			return nil, fmt.Errorf("%s: %d of %d calls failed in the warm-up, the first: %s", s.name, warm.errors, len(warm.latencies), warm.firstErr)
		}
	}
	for range cfg.Rounds {
		for i := range sides {
			sides[i].load.add(hammer(ctx, cfg.Callers, cfg.Duration/time.Duration(cfg.Rounds), sides[i].call))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep.MCP, rep.Bare, rep.MCPGoClient, rep.NoopTool, rep.JobsClient = sides[0].load.rate(), sides[1].load.rate(), sides[2].load.rate(), sides[3].load.rate(), sides[4].load.rate()
	for _, r := range []rate{rep.MCP, rep.Bare, rep.MCPGoClient, rep.NoopTool, rep.JobsClient} {
		if r.Calls == 0 {
			return nil, errors.New("no call completed")
		}
	}
	rep.ThroughputRatio = ratio(rep.MCP.PerSecond, rep.Bare.PerSecond)
	rep.P50Ratio = ratio(rep.MCP.Latency.P50, rep.Bare.Latency.P50)
	rep.P99Ratio = ratio(rep.MCP.Latency.P99, rep.Bare.Latency.P99)
	rep.MCPGoClientRatio = ratio(rep.MCPGoClient.PerSecond, rep.Bare.PerSecond)
	rep.NoopToolRatio = ratio(rep.NoopTool.PerSecond, rep.Bare.PerSecond)
	rep.JobsClientRatio = ratio(rep.JobsClient.PerSecond, rep.Bare.PerSecond)
	return rep, nil
}

// mcpSide is the mcpjobs side's calls: call makes one tool call that only
// enqueues with a minimal client, callMCPGo the same with mcp-go's client,
// direct calls store.Client.Enqueue as the tool does.
type mcpSide struct {
	call, callMCPGo, direct func(context.Context, int) error
}

// enqueueMCP sets up the mcpjobs side: an MCP server over loopback HTTP and
// two MCP clients per caller, a minimal one and mcp-go's.
func enqueueMCP(ctx context.Context, cfg EnqueueConfig) (side mcpSide, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	db, err := cfg.Redis.Open(ctx, SideMCPJobs)
	if err != nil {
		return side, nil, err
	}
	closers = append(closers, func() { _ = db.Close() })
	jc := store.NewClient(db.Client, store.Options{Logger: discard})
	closers = append(closers, func() { _ = jc.Close() })
	srv, err := mcp.New(mcp.Options{Jobs: jc, Logger: discard})
	if err != nil {
		return side, nil, err
	}
	closers = append(closers, func() { _ = srv.Close() })
	url, stop, err := serve(srv.HTTPHandler())
	if err != nil {
		return side, nil, err
	}
	closers = append(closers, stop)
	rpcs := make([]*rpcClient, cfg.Callers)
	clients := make([]*mcpclient.Client, cfg.Callers)
	for i := range clients {
		if rpcs[i], err = dialRPC(ctx, url+"/mcp"); err != nil {
			return side, nil, fmt.Errorf("connect minimal MCP client: %w", err)
		}
		if clients[i], err = dialMCP(ctx, url+"/mcp"); err != nil {
			return side, nil, fmt.Errorf("connect MCP client: %w", err)
		}
		closers = append(closers, func() { _ = clients[i].Close() })
	}
	args := withArgs(dagArgs, map[string]any{"wait_seconds": 0})
	pending := func(v toolView, err error) error {
		if err == nil && v.State != jobs.StatePending {
			err = fmt.Errorf("execute_code_to_dag answered state %q, want pending", v.State)
		}
		return err
	}
	side.call = func(ctx context.Context, i int) error {
		return pending(rpcs[i].callTool(ctx, "execute_code_to_dag", args))
	}
	side.callMCPGo = func(ctx context.Context, i int) error {
		return pending(callTool(ctx, clients[i], "execute_code_to_dag", args))
	}
	side.direct = func(ctx context.Context, _ int) error {
		_, err := jc.Enqueue(ctx, owner, dagPayload)
		return err
	}
	return side, closeAll, nil
}

// noopMCP sets up mcp-go's streamable HTTP server, default options, with a
// tool named execute_code_to_dag that answers a pending job view at once;
// call calls it as the mcpjobs side's call does.
func noopMCP(ctx context.Context, cfg EnqueueConfig) (call func(context.Context, int) error, closeAll func(), err error) {
	s := mcpserver.NewMCPServer("noop", "1", mcpserver.WithToolCapabilities(false))
	answer := `{"job_id":"dag-noop","state":"pending"}`
	s.AddTool(mcpgo.NewTool("execute_code_to_dag", mcpgo.WithString("code"), mcpgo.WithString("language"), mcpgo.WithNumber("wait_seconds")),
		func(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			return mcpgo.NewToolResultText(answer), nil
		})
	url, stop, err := serve(mcpserver.NewStreamableHTTPServer(s))
	if err != nil {
		return nil, nil, err
	}
	rpcs := make([]*rpcClient, cfg.Callers)
	for i := range rpcs {
		if rpcs[i], err = dialRPC(ctx, url+"/mcp"); err != nil {
			stop()
			return nil, nil, err
		}
	}
	args := withArgs(dagArgs, map[string]any{"wait_seconds": 0})
	return func(ctx context.Context, i int) error {
		_, err := rpcs[i].callTool(ctx, "execute_code_to_dag", args)
		return err
	}, stop, nil
}

// enqueueBare sets up the baseline side: one asynq.Client, as its users
// share one. call enqueues the same task type, payload and options.
func enqueueBare(ctx context.Context, cfg EnqueueConfig) (call func(context.Context, int) error, closeAll func(), err error) {
	db, err := cfg.Redis.Open(ctx, SideBaseline)
	if err != nil {
		return nil, nil, err
	}
	client := asynq.NewClientFromRedisClient(db.Client)
	closeAll = func() { _ = client.Close(); _ = db.Close() }
	body, err := json.Marshal(dagPayload)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	opts := bareOptions(jobs.TypeDAG)
	call = func(ctx context.Context, _ int) error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask(jobs.TypeDAG, body), opts...)
		return err
	}
	return call, closeAll, nil
}
