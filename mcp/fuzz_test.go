package mcp_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	mcpclient "github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/mcp"
)

// fuzzTools are the tools FuzzToolArguments calls; the first byte of an
// input picks one.
var fuzzTools = []string{
	"coverage_aspect_analysis", "run_big_query", "execute_code_to_dag", "submit_batch_task",
	"query_task_status", "get_job", "list_jobs", "cancel_job",
}

// waitingTools take wait_seconds; the fuzzer forces it to 0 (there is no
// worker, so any wait would run to its end).
var waitingTools = []string{
	"coverage_aspect_analysis", "run_big_query", "execute_code_to_dag", "submit_batch_task",
	"query_task_status", "get_job",
}

// callLimit bounds one fuzzed call; none waits, so each answers at once.
const callLimit = 10 * time.Second

// FuzzToolArguments sends arbitrary JSON as the arguments of every tool,
// through an in-process MCP client, to a server on a real Redis with no
// worker. Every call must answer a tool result, never a protocol error or
// a panic: either a tool error or, for a valid request, a job view (a job
// list for list_jobs).
func FuzzToolArguments(f *testing.F) {
	seeds := []struct {
		tool int
		args string
	}{
		{0, `{"coverage_id":"dem_30m","bbox":[116.0,39.8,116.1,39.9]}`},
		{0, `{"coverage_id":"dem_30m","bbox":[116.0,39.8,116.1,39.9],"scale_m":90,"auth_token":"tok"}`},
		{0, `{"coverage_id":"moon","bbox":[1,2,3]}`},
		{0, `{"coverage_id":7,"bbox":"116,39,117,40","scale_m":"30"}`},
		{0, `{"coverage_id":"dem_30m","bbox":[116.0,39.8,116.1,39.9],"scale_m":0}`},
		{1, `{"sql":"SELECT region FROM landcover LIMIT 10","max_rows":10}`},
		{1, `{"sql":"SELECT 1","max_rows":1.5}`},
		{1, `{"sql":["SELECT 1"]}`},
		{1, `{"sql":"SELECT 1","wait_seconds":-1}`},
		{1, `{"sql":"SELECT 1","wait_seconds":"soon"}`},
		{2, `{"code":"var dem = Image('dem_30m')","language":"javascript"}`},
		{2, `{"code":"x","language":"cobol","colour":"red"}`},
		{3, `{"name":"n","code":"c","output":{"format":"GeoTIFF","path":"/out/a.tif"},"idempotency_key":"k1"}`},
		{3, `{"name":"n","code":"c","output":"here"}`},
		{3, `{"name":"n","code":"c","output":{"format":"GeoTIFF","path":"/a","extra":1}}`},
		{4, `{"task_id":"bt-0123456789abcdef","max_age_seconds":0}`},
		{4, `{"task_id":"bt 1; DROP","max_age_seconds":-1}`},
		{5, `{"job_id":"aspect-00000000-0000-0000-0000-000000000000"}`},
		{5, `{"job_id":"","wait_seconds":61}`},
		{5, `{"job_id":"no-such-kind"}`},
		{6, `{}`},
		{6, `{"state":"completed","limit":5}`},
		{6, `{"state":"sleeping","limit":1000}`},
		{7, `{"job_id":"dag-00000000-0000-0000-0000-000000000000"}`},
		{7, `{"job_id":null}`},
		{1, `null`},
		{2, `[1,2]`},
		{6, `"list"`},
		{6, `42`},
	}
	for _, s := range seeds {
		f.Add(uint8(s.tool), []byte(s.args))
	}
	c := fuzzClient(f)
	f.Fuzz(func(t *testing.T, which uint8, raw []byte) {
		if len(raw) > 16<<10 {
			return // keep each call small: size limits have their own tests
		}
		var args any
		if err := json.Unmarshal(raw, &args); err != nil {
			return // not JSON: the client could not send it as arguments
		}
		name := fuzzTools[int(which)%len(fuzzTools)]
		if obj, ok := args.(map[string]any); ok && slices.Contains(waitingTools, name) {
			// Absent or null means the default wait, a positive number a
			// wait: both become 0. Other values stay, to be refused.
			switch w := obj["wait_seconds"].(type) {
			case nil:
				obj["wait_seconds"] = 0
			case float64:
				if w > 0 {
					obj["wait_seconds"] = 0
				}
			}
		}
		ctx, cancel := context.WithTimeout(mcp.WithIdentity(t.Context(), "fuzz"), callLimit)
		defer cancel()
		start := time.Now()
		res, err := c.CallTool(ctx, mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: name, Arguments: args}})
		if took := time.Since(start); took > callLimit/2 {
			t.Fatalf("%s(%s): answered after %v; with no wait, a call answers at once", name, raw, took)
		}
		if err != nil {
			t.Fatalf("%s(%s): protocol error %v; want a tool result", name, raw, err)
		}
		text := resultText(res)
		if res.IsError {
			if strings.TrimSpace(text) == "" || strings.Contains(text, "panic") {
				t.Fatalf("%s(%s): tool error %q; want a message saying what is wrong", name, raw, text)
			}
			return
		}
		checkAnswer(t, name, raw, text)
	})
}

// fuzzClient serves the MCP server in process on a real Redis, without a
// worker, and returns an initialized client.
func fuzzClient(f *testing.F) *mcpclient.Client {
	f.Helper()
	rdb := redistest.Start(f).Client(f)
	jc := store.NewClient(rdb, store.Options{})
	f.Cleanup(func() { _ = jc.Close() })
	srv, err := mcp.New(mcp.Options{Jobs: jc})
	if err != nil {
		f.Fatal(err)
	}
	c, err := mcpclient.NewInProcessClient(srv.MCPServer())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = c.Close() })
	ctx := f.Context()
	if err := c.Start(ctx); err != nil {
		f.Fatal(err)
	}
	if _, err := c.Initialize(ctx, mcpgo.InitializeRequest{Params: mcpgo.InitializeParams{
		ProtocolVersion: mcpgo.LATEST_PROTOCOL_VERSION,
		ClientInfo:      mcpgo.Implementation{Name: "fuzz", Version: "1"},
	}}); err != nil {
		f.Fatal(err)
	}
	return c
}

// checkAnswer checks that a successful answer is a job view, or a job list
// for list_jobs, and that it did not wait.
func checkAnswer(t *testing.T, name string, raw []byte, text string) {
	t.Helper()
	if name == "list_jobs" {
		var list struct {
			Jobs  []json.RawMessage `json:"jobs"`
			Count *int              `json:"count"`
		}
		if err := json.Unmarshal([]byte(text), &list); err != nil || list.Count == nil || *list.Count != len(list.Jobs) {
			t.Fatalf("list_jobs(%s) answered %q; want {jobs, count}", raw, text)
		}
		return
	}
	var v struct {
		JobID     string     `json:"job_id"`
		State     jobs.State `json:"state"`
		CreatedAt *time.Time `json:"created_at"`
	}
	if err := json.Unmarshal([]byte(text), &v); err != nil || v.JobID == "" || !slices.Contains(jobs.ValidStates, v.State) {
		t.Fatalf("%s(%s) answered %q; want a job view", name, raw, text)
	}
}

func resultText(r *mcpgo.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(mcpgo.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}
