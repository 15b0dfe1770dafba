package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func envFunc(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// startCommand runs an mcpjobs subcommand in the background until the test ends.
func startCommand(t *testing.T, env map[string]string, stdin io.Reader, stdout io.Writer, args ...string) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, stdin, stdout, stderr, envFunc(env)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("mcpjobs %s exited %d:\n%s", args[0], code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("mcpjobs %s did not stop within 30s", args[0])
		}
	})
	return stderr
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not answer", url)
}

// httpClient connects an initialized mcp-go client over streamable HTTP.
func httpClient(t *testing.T, url string) *mcpclient.Client {
	t.Helper()
	c, err := mcpclient.NewStreamableHttpClient(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	initialize(t, c)
	return c
}

// startSim runs `mcpjobs sim` on addr and waits until it answers.
func startSim(t *testing.T, addr string) {
	t.Helper()
	startCommand(t, map[string]string{"LOG_LEVEL": "warn"}, nil, io.Discard, "sim", "--addr", addr)
	waitHTTP(t, "http://"+addr+"/sim/stats")
}

func initialize(t *testing.T, c *mcpclient.Client) {
	t.Helper()
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(t.Context(), mcpgo.InitializeRequest{Params: mcpgo.InitializeParams{
		ProtocolVersion: mcpgo.LATEST_PROTOCOL_VERSION,
		ClientInfo:      mcpgo.Implementation{Name: "e2e", Version: "1"},
	}}); err != nil {
		t.Fatal(err)
	}
}

type view struct {
	JobID  string `json:"job_id"`
	State  string `json:"state"`
	Result struct {
		Data struct {
			CellCount int                `json:"cell_count"`
			Histogram map[string]float64 `json:"histogram"`
		} `json:"data"`
		ExecutionTimeMS *int64 `json:"execution_time_ms"`
		Attempts        int    `json:"attempts"`
	} `json:"result"`
	Error any `json:"error"`
}

func callAspect(t *testing.T, c *mcpclient.Client) view {
	t.Helper()
	res, err := c.CallTool(t.Context(), mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{
		Name:      "coverage_aspect_analysis",
		Arguments: map[string]any{"coverage_id": "dem_30m", "bbox": []any{116.0, 39.8, 116.1, 39.9}, "wait_seconds": 30},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, ct := range res.Content {
		if tc, ok := ct.(mcpgo.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	if res.IsError {
		t.Fatalf("tool error: %s", b.String())
	}
	var v view
	if err := json.Unmarshal([]byte(b.String()), &v); err != nil {
		t.Fatalf("decode view %q: %v", b.String(), err)
	}
	return v
}

func checkCompletedAspect(t *testing.T, v view) {
	t.Helper()
	if v.State != "completed" {
		t.Fatalf("state = %s, error %v", v.State, v.Error)
	}
	sum := 0.0
	for _, f := range v.Result.Data.Histogram {
		sum += f
	}
	if len(v.Result.Data.Histogram) != 9 || math.Abs(sum-1) > 1e-9 {
		t.Errorf("histogram %v sums to %v", v.Result.Data.Histogram, sum)
	}
	if v.Result.ExecutionTimeMS == nil || v.Result.Attempts != 1 {
		t.Errorf("result lacks execution_time_ms or attempts: %+v", v.Result)
	}
}

// TestDevEndToEnd runs `mcpjobs dev` and calls the aspect tool through
// mcp-go's client over streamable HTTP: MCP → Redis → worker → simulator.
func TestDevEndToEnd(t *testing.T) {
	redisURL := redistest.Start(t).URL
	addr, simAddr := freeAddr(t), freeAddr(t)
	stdout := &syncBuffer{}
	startCommand(t, map[string]string{"REDIS_URL": redisURL, "LOG_LEVEL": "warn"}, nil, stdout,
		"dev", "--addr", addr, "--sim-addr", simAddr, "--web-addr", freeAddr(t), "--state-dir", t.TempDir())
	waitHTTP(t, "http://"+simAddr+"/sim/stats")
	waitHTTP(t, "http://"+addr+"/mcp")

	c := httpClient(t, "http://"+addr+"/mcp")
	checkCompletedAspect(t, callAspect(t, c))

	if out := stdout.String(); !strings.Contains(out, "http://"+addr+"/mcp") || !strings.Contains(out, `"mcpServers"`) {
		t.Errorf("dev banner lacks the MCP URL or the client config:\n%s", out)
	}
	resp, err := http.Get("http://" + simAddr + "/sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats struct {
		AuthCalls int            `json:"auth_calls"`
		Calls     map[string]int `json:"calls"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	if stats.AuthCalls != 1 || stats.Calls["aspect"] != 1 {
		t.Errorf("simulator saw %+v; want one auth and one aspect call", stats)
	}
}

// TestStdioEndToEnd serves MCP over stdio with separate worker and
// simulator processes' code, as a desktop client would use it.
func TestStdioEndToEnd(t *testing.T) {
	redisURL := redistest.Start(t).URL
	simAddr := freeAddr(t)
	startSim(t, simAddr)
	startCommand(t, map[string]string{
		"REDIS_URL": redisURL, "INTRANET_BASE_URL": "http://" + simAddr,
		"INTRANET_USERNAME": "svc-mcp", "INTRANET_PASSWORD": "sim-password", "LOG_LEVEL": "warn",
	}, nil, io.Discard, "worker", "--concurrency", "4")

	clientToServer, serverIn := io.Pipe()
	serverOut, serverToClient := io.Pipe()
	startCommand(t, map[string]string{"REDIS_URL": redisURL, "LOG_LEVEL": "warn"}, clientToServer, serverToClient, "mcp")
	t.Cleanup(func() { _ = serverIn.Close(); _ = serverToClient.Close() })

	c := mcpclient.NewClient(transport.NewIO(serverOut, serverIn, io.NopCloser(strings.NewReader(""))))
	defer c.Close()
	initialize(t, c)
	checkCompletedAspect(t, callAspect(t, c))

	// The other tools work over stdio too, as the identity "local".
	q := callView(t, c, "run_big_query", map[string]any{"sql": "SELECT COUNT(*) FROM landcover"})
	d := callView(t, c, "execute_code_to_dag", map[string]any{"code": "x = Image('dem_30m')", "language": "python", "wait_seconds": 0})
	sub := callView(t, c, "submit_batch_task", withArgs(submitArgs, map[string]any{"wait_seconds": 0}))
	waitUntil(t, 20*time.Second, func() bool {
		sub = callView(t, c, "get_job", map[string]any{"job_id": sub.JobID})
		return sub.Batch != nil
	})
	st := callView(t, c, "query_task_status", map[string]any{"task_id": sub.Batch.TaskID})
	got := callView(t, c, "get_job", map[string]any{"job_id": d.JobID, "wait_seconds": 20})
	if q.State != "completed" || got.State != "completed" || st.State != "completed" {
		t.Errorf("states: query %s, dag %s, status %s", q.State, got.State, st.State)
	}
	text, isErr := tool(t, c, "list_jobs", map[string]any{"limit": 10})
	if isErr || !strings.Contains(text, d.JobID) || !strings.Contains(text, sub.JobID) {
		t.Errorf("list_jobs: %s", text)
	}
	c2 := callView(t, c, "cancel_job", map[string]any{"job_id": sub.JobID})
	if c2.JobID != sub.JobID {
		t.Errorf("cancel_job: %+v", c2)
	}
}

func TestHelpListsFlagsAndEnvironment(t *testing.T) {
	for _, cmd := range []string{"dev", "mcp", "worker", "sim", "web", "token", "bench"} {
		t.Run(cmd, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), []string{cmd, "--help"}, nil, &stdout, &stderr, envFunc(nil))
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			if stderr.Len() != 0 {
				t.Errorf("--help wrote to stderr:\n%s", stderr.String())
			}
			out := stdout.String()
			if !strings.Contains(out, "-addr") && cmd != "worker" && cmd != "token" && cmd != "bench" {
				t.Errorf("--help lacks --addr:\n%s", out)
			}
			if cmd != "sim" && !strings.Contains(out, "REDIS_URL") {
				t.Errorf("--help lacks the environment:\n%s", out)
			}
		})
	}
}

func TestBadUsage(t *testing.T) {
	for _, args := range [][]string{{"nope"}, {"mcp", "--transport", "carrier-pigeon"}, {"worker", "--no-such-flag"}} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), args, nil, &stdout, &stderr, envFunc(nil)); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr.String())
		}
		if stdout.Len() != 0 || stderr.Len() == 0 {
			t.Errorf("%v: a usage error belongs on stderr; stdout %q, stderr %q", args, stdout.String(), stderr.String())
		}
	}
}

func TestMCPRefusesExposedHTTPWithoutTokens(t *testing.T) {
	redisURL := redistest.Start(t).URL
	var stderr bytes.Buffer
	code := run(t.Context(), []string{"mcp", "--transport", "http", "--addr", "0.0.0.0:0"}, nil, io.Discard, &stderr,
		envFunc(map[string]string{"REDIS_URL": redisURL}))
	if code != 1 || !strings.Contains(stderr.String(), "MCP_AUTH_TOKENS") {
		t.Errorf("exit %d:\n%s", code, stderr.String())
	}
}

func TestTokenRefreshCommand(t *testing.T) {
	redisURL := redistest.Start(t).URL
	simAddr := freeAddr(t)
	startSim(t, simAddr)
	env := envFunc(map[string]string{"REDIS_URL": redisURL, "INTRANET_BASE_URL": "http://" + simAddr,
		"INTRANET_USERNAME": "svc-mcp", "INTRANET_PASSWORD": "sim-password", "LOG_LEVEL": "warn"})
	for i, want := range []string{`"generation": 1`, `"generation": 2`} {
		var out, errOut syncBuffer
		if code := run(t.Context(), []string{"token", "refresh", "--json"}, nil, &out, &errOut, env); code != 0 {
			t.Fatalf("refresh %d exited %d: %s", i, code, errOut.String())
		}
		if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), `"refreshed_by": "mcpjobs-token-cli"`) {
			t.Errorf("refresh %d printed:\n%s", i, out.String())
		}
	}
	var errOut syncBuffer
	if code := run(t.Context(), []string{"token", "frobnicate"}, nil, io.Discard, &errOut, env); code != 2 {
		t.Errorf("unknown action exited %d", code)
	}
}

// TestDevEmbeddedRedis: with no REDIS_URL and no redis-server on PATH, dev
// falls back to an embedded in-memory Redis, says so, and still works.
func TestDevEmbeddedRedis(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	addr, simAddr := freeAddr(t), freeAddr(t)
	stdout := &syncBuffer{}
	stderr := startCommand(t, map[string]string{"LOG_LEVEL": "warn"}, nil, stdout,
		"dev", "--addr", addr, "--sim-addr", simAddr, "--web-addr", freeAddr(t), "--state-dir", t.TempDir())
	waitHTTP(t, "http://"+addr+"/mcp")
	c := httpClient(t, "http://"+addr+"/mcp")
	checkCompletedAspect(t, callAspect(t, c))
	if !strings.Contains(stderr.String(), "embedded in-memory Redis") || !strings.Contains(stdout.String(), "jobs do not survive exit") {
		t.Errorf("no warning about the embedded Redis:\n%s\n%s", stderr.String(), stdout.String())
	}
}

// TestWorkerMetrics: a worker with --metrics-addr serves mcpjobs_ series,
// among them a token metric and the platform call latency histogram.
func TestWorkerMetrics(t *testing.T) {
	redisURL := redistest.Start(t).URL
	simAddr, metricsAddr := freeAddr(t), freeAddr(t)
	startSim(t, simAddr)
	startCommand(t, map[string]string{"REDIS_URL": redisURL, "INTRANET_BASE_URL": "http://" + simAddr,
		"INTRANET_USERNAME": "svc-mcp", "INTRANET_PASSWORD": "sim-password", "LOG_LEVEL": "warn"},
		nil, io.Discard, "worker", "--metrics-addr", metricsAddr)
	mcpAddr, mcpMetrics := freeAddr(t), freeAddr(t)
	startCommand(t, map[string]string{"REDIS_URL": redisURL, "LOG_LEVEL": "warn"}, nil, io.Discard,
		"mcp", "--transport", "http", "--addr", mcpAddr, "--metrics-addr", mcpMetrics)
	waitHTTP(t, "http://"+metricsAddr+"/metrics")
	waitHTTP(t, "http://"+mcpAddr+"/mcp")
	c := httpClient(t, "http://"+mcpAddr+"/mcp")
	checkCompletedAspect(t, callAspect(t, c))

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`mcpjobs_platform_call_duration_seconds_bucket{operation="aspect",outcome="ok"`,
		`mcpjobs_jobs_finished_total{outcome="completed",type="intranet:aspect"} 1`,
		`mcpjobs_token_refreshes_total 1`,
		`mcpjobs_token_expired_total 0`,
		`mcpjobs_token_lock_wait_seconds_count`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("worker metrics lack %s", want)
		}
	}
	resp, err = http.Get("http://" + mcpMetrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	for _, want := range []string{
		`mcpjobs_tool_calls_total{outcome="ok",tool="coverage_aspect_analysis"} 1`,
		`mcpjobs_tool_call_duration_seconds_count{tool="coverage_aspect_analysis"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("MCP metrics lack %s", want)
		}
	}
}

// TestConfigurationDocIsComplete: docs/configuration.md names every flag of
// every subcommand.
func TestConfigurationDocIsComplete(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range commands {
		var stdout bytes.Buffer
		run(t.Context(), []string{name, "--help"}, nil, &stdout, io.Discard, envFunc(nil))
		for _, line := range strings.Split(stdout.String(), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], "-") && !strings.Contains(string(doc), line) {
				t.Errorf("docs/configuration.md lacks %q of mcpjobs %s (regenerate it from --help)", f[0], name)
			}
		}
	}
}
