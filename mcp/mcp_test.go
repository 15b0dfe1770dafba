package mcp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/mcp"
)

type env struct {
	rdb *redis.Client
	url string
}

// setup serves the MCP server over HTTP on a real Redis, with no worker:
// jobs stay pending.
func setup(t *testing.T, tokens string) *env {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	jc := store.NewClient(rdb, store.Options{})
	t.Cleanup(func() { _ = jc.Close() })
	tok, err := mcp.ParseTokens(tokens)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := mcp.New(mcp.Options{Jobs: jc, Tokens: tok})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	hs := httptest.NewServer(srv.HTTPHandler())
	t.Cleanup(hs.Close)
	return &env{rdb: rdb, url: hs.URL + "/mcp"}
}

func (e *env) client(t *testing.T, bearer string) *mcpclient.Client {
	t.Helper()
	return e.dial(t, bearer, mcpgo.LATEST_PROTOCOL_VERSION)
}

// clientAt is a client without a bearer token that asks for protocol
// version at initialize.
func (e *env) clientAt(t *testing.T, version string) *mcpclient.Client {
	t.Helper()
	return e.dial(t, "", version)
}

func (e *env) dial(t *testing.T, bearer, version string) *mcpclient.Client {
	t.Helper()
	var opts []transport.StreamableHTTPCOption
	if bearer != "" {
		opts = append(opts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + bearer}))
	}
	c, err := mcpclient.NewStreamableHttpClient(e.url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(ctx, mcpgo.InitializeRequest{Params: mcpgo.InitializeParams{
		ProtocolVersion: version,
		ClientInfo:      mcpgo.Implementation{Name: "mcp_test", Version: "1"},
	}}); err != nil {
		t.Fatal(err)
	}
	return c
}

func call(t *testing.T, c *mcpclient.Client, tool string, args any) *mcpgo.CallToolResult {
	t.Helper()
	res, err := c.CallTool(t.Context(), mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: tool, Arguments: args}})
	if err != nil {
		t.Fatalf("call %s: %v", tool, err)
	}
	return res
}

func text(r *mcpgo.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(mcpgo.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// queued counts the tasks in every queue.
func queued(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	queues, err := insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, q := range queues {
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			t.Fatal(err)
		}
		n += info.Size
	}
	return n
}

func TestAspectBadArguments(t *testing.T) {
	e := setup(t, "")
	c := e.client(t, "")
	good := func() map[string]any {
		return map[string]any{"coverage_id": "dem_30m", "bbox": []any{116.0, 39.8, 116.1, 39.9}, "wait_seconds": 0}
	}
	tests := []struct {
		name  string
		edit  func(map[string]any)
		field string
	}{
		{"bbox with 3 numbers", func(a map[string]any) { a["bbox"] = []any{1.0, 2.0, 3.0} }, "bbox"},
		{"bbox with 5 numbers", func(a map[string]any) { a["bbox"] = []any{1.0, 2.0, 3.0, 4.0, 5.0} }, "bbox"},
		{"bbox min not below max", func(a map[string]any) { a["bbox"] = []any{116.1, 39.8, 116.0, 39.9} }, "bbox"},
		{"bbox latitude out of range", func(a map[string]any) { a["bbox"] = []any{0.0, -95.0, 1.0, 1.0} }, "bbox"},
		{"bbox with a string", func(a map[string]any) { a["bbox"] = []any{"a", 2.0, 3.0, 4.0} }, "bbox"},
		{"bbox missing", func(a map[string]any) { delete(a, "bbox") }, "bbox"},
		{"coverage_id empty", func(a map[string]any) { a["coverage_id"] = "" }, "coverage_id"},
		{"coverage_id unknown", func(a map[string]any) { a["coverage_id"] = "moon_dem" }, "coverage_id"},
		{"coverage_id missing", func(a map[string]any) { delete(a, "coverage_id") }, "coverage_id"},
		{"scale_m zero", func(a map[string]any) { a["scale_m"] = 0 }, "scale_m"},
		{"scale_m too large", func(a map[string]any) { a["scale_m"] = 20000 }, "scale_m"},
		{"scale_m a string", func(a map[string]any) { a["scale_m"] = "30" }, "scale_m"},
		{"wait_seconds negative", func(a map[string]any) { a["wait_seconds"] = -1 }, "wait_seconds"},
		{"wait_seconds over 60", func(a map[string]any) { a["wait_seconds"] = 61 }, "wait_seconds"},
		{"unknown argument", func(a map[string]any) { a["colour"] = "red" }, "colour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := good()
			tt.edit(args)
			res := call(t, c, "coverage_aspect_analysis", args)
			if !res.IsError {
				t.Fatalf("not a tool error: %s", text(res))
			}
			t.Logf("%s", text(res))
			if !strings.Contains(text(res), tt.field) {
				t.Errorf("error %q does not name %s", text(res), tt.field)
			}
			if n := queued(t, e.rdb); n != 0 {
				t.Errorf("%d tasks enqueued for a bad request", n)
			}
		})
	}
}

func TestAspectEnqueuesAndAnswersJobView(t *testing.T) {
	e := setup(t, "")
	c := e.client(t, "")
	res := call(t, c, "coverage_aspect_analysis", map[string]any{
		"coverage_id": "dem_30m", "bbox": []any{116.0, 39.8, 116.1, 39.9}, "wait_seconds": 0, "auth_token": "caller-secret-token",
	})
	if res.IsError {
		t.Fatalf("tool error: %s", text(res))
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(text(res)), &v); err != nil {
		t.Fatalf("text is not the JSON view: %v", err)
	}
	sc, _ := json.Marshal(res.StructuredContent)
	var structured map[string]any
	if err := json.Unmarshal(sc, &structured); err != nil || !reflect.DeepEqual(structured, v) {
		t.Errorf("structuredContent %s differs from text %s", sc, text(res))
	}
	if v["state"] != "pending" || !strings.HasPrefix(v["job_id"].(string), "aspect-") {
		t.Errorf("view = %v", v)
	}
	if n := queued(t, e.rdb); n != 1 {
		t.Errorf("queued = %d, want 1", n)
	}
	// The caller's token is not in the task payload the dashboard shows.
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	info, err := insp.GetTaskInfo(jobs.QueueInteractive, v["job_id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(info.Payload), "caller-secret-token") || strings.Contains(strings.Join(mapValues(info.Headers), ","), "caller-secret-token") {
		t.Error("the caller's auth_token is in the task")
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestToolsListHasSchemas(t *testing.T) {
	e := setup(t, "")
	c := e.client(t, "")
	res, err := c.ListTools(t.Context(), mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, tool := range res.Tools {
		a := tool.Annotations
		if tool.Name == "get_job" || tool.Name == "list_jobs" {
			if a.ReadOnlyHint == nil || !*a.ReadOnlyHint || a.DestructiveHint == nil || *a.DestructiveHint || a.OpenWorldHint == nil || *a.OpenWorldHint {
				t.Errorf("%s: annotations %+v; want read-only, not destructive, closed-world", tool.Name, a)
			}
		}
		if tool.Name == "submit_batch_task" && !slices.Contains(tool.InputSchema.Required, "output") {
			t.Errorf("submit_batch_task: required %v lacks output", tool.InputSchema.Required)
		}
		if tool.Name != "coverage_aspect_analysis" {
			continue
		}
		found = true
		for _, p := range []string{"coverage_id", "bbox", "scale_m", "auth_token", "wait_seconds"} {
			if _, ok := tool.InputSchema.Properties[p]; !ok {
				t.Errorf("schema lacks %s", p)
			}
		}
		if tool.Description == "" {
			t.Error("no description")
		}
	}
	if !found {
		t.Fatal("coverage_aspect_analysis not listed")
	}
}

func TestHTTPAuthentication(t *testing.T) {
	e := setup(t, "alice:secret-a,bob:secret-b")
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	for _, tt := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"not bearer", "Basic secret-a", http.StatusUnauthorized},
		{"valid token", "Bearer secret-a", http.StatusOK},
		{"lower-case scheme", "bearer secret-a", http.StatusOK},
		{"upper-case scheme", "BEARER secret-a", http.StatusOK},
		{"scheme alone", "Bearer ", http.StatusUnauthorized},
		{"token as scheme", "secret-a", http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, e.url, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	// An authenticated client works end to end.
	c := e.client(t, "secret-b")
	res := call(t, c, "coverage_aspect_analysis", map[string]any{"coverage_id": "dem_30m", "bbox": []any{116.0, 39.8, 116.1, 39.9}, "wait_seconds": 0})
	if res.IsError {
		t.Fatalf("tool error: %s", text(res))
	}
}

func TestParseTokens(t *testing.T) {
	for _, tt := range []struct {
		in      string
		n       int
		wantErr bool
	}{
		{"", 0, false},
		{"alice:a", 1, false},
		{" alice:a , bob:b ", 2, false},
		{"alice", 0, true},
		{"alice:", 0, true},
		{":tok", 0, true},
		{"alice:a,bob:a", 0, true},
	} {
		tok, err := mcp.ParseTokens(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseTokens(%q) error = %v", tt.in, err)
			continue
		}
		if err == nil && tok.Len() != tt.n {
			t.Errorf("ParseTokens(%q).Len() = %d, want %d", tt.in, tok.Len(), tt.n)
		}
		if err != nil && strings.Contains(err.Error(), "a,") {
			t.Errorf("error leaks a token: %v", err)
		}
	}
}

func TestHTTPBodyCap(t *testing.T) {
	e := setup(t, "")
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_big_query","arguments":{"sql":"` + strings.Repeat("x", mcp.MaxRequestBytes) + `"}}}`
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status = %d, want 413", resp.StatusCode)
	}
	if n := queued(t, e.rdb); n != 0 {
		t.Errorf("%d tasks enqueued", n)
	}
}

// TestToolCallRoundTrips: a tool call that only enqueues costs the
// enqueue's two round trips to Redis (the owner's index, then the task).
// On a protocol version with sessions the session is read from the
// replica's cache.
func TestToolCallRoundTrips(t *testing.T) {
	e := setup(t, "")
	hook := &redistest.RoundTrips{}
	e.rdb.AddHook(hook)
	for _, version := range []string{mcpgo.LATEST_PROTOCOL_VERSION, mcpgo.LATEST_LEGACY_PROTOCOL_VERSION} {
		c := e.clientAt(t, version)
		args := map[string]any{"code": "var a = 1", "language": "javascript", "wait_seconds": 0}
		// Warm up: asynq's first enqueue adds its queue; the session cache
		// starts listening at its first read.
		deadline := time.Now().Add(10 * time.Second)
		for {
			hook.Reset()
			if res := call(t, c, "execute_code_to_dag", args); res.IsError {
				t.Fatal(text(res))
			}
			if hook.Count() == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("protocol %s: a tool call still takes %d round trips after 10 s", version, hook.Count())
			}
		}
		hook.Reset()
		const n = 20
		for range n {
			if res := call(t, c, "execute_code_to_dag", args); res.IsError {
				t.Fatal(text(res))
			}
		}
		if got := hook.Count(); got < 2*n || got > 2*n+1 {
			t.Errorf("protocol %s: %d tool calls took %d round trips to Redis; want %d (one more when the cached session turns 10 s old)", version, n, got, 2*n)
		}
	}
}
