package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/mcp"
)

// malformedToken is the bearer token of the identity the malformed
// requests run as.
const malformedToken = "malformed-secret"

// answer is what one raw request got back.
type answer struct {
	status   int
	rpcCode  int    // the JSON-RPC error code, 0 when none
	message  string // the JSON-RPC error message, the tool error, or the HTTP body
	toolErr  bool   // a tool result with isError
	toolOK   bool   // a tool result without isError
	duration time.Duration
}

// kind says which sort of error an answer is, for the table.
func (a answer) kind() string {
	switch {
	case a.status >= 400 && a.rpcCode != 0:
		return fmt.Sprintf("HTTP %d, JSON-RPC %d", a.status, a.rpcCode)
	case a.status >= 400:
		return fmt.Sprintf("HTTP %d", a.status)
	case a.rpcCode != 0:
		return fmt.Sprintf("JSON-RPC %d", a.rpcCode)
	case a.toolErr:
		return "tool error"
	case a.toolOK:
		return "tool result"
	default:
		return fmt.Sprintf("HTTP %d, no error", a.status)
	}
}

// rawMCP posts raw bodies to an MCP server over HTTP within one
// initialized session.
type rawMCP struct {
	url, session, version string
}

// newRawMCP serves mcp.New's HTTP handler on httptest, on a real Redis with
// no worker, with one bearer token, and initializes a session.
func newRawMCP(t *testing.T) (*rawMCP, *asynq.Inspector) {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	jc := store.NewClient(rdb, store.Options{})
	t.Cleanup(func() { _ = jc.Close() })
	tokens, err := mcp.ParseTokens("malformed:" + malformedToken)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := mcp.New(mcp.Options{Jobs: jc, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.HTTPHandler())
	t.Cleanup(hs.Close)
	r := &rawMCP{url: hs.URL + "/mcp"}
	init := fmt.Sprintf(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":%q,"capabilities":{},"clientInfo":{"name":"malformed","version":"1"}}}`, mcpgo.LATEST_PROTOCOL_VERSION)
	resp, body := r.post(t, []byte(init), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: HTTP %d %s", resp.StatusCode, body)
	}
	r.session = resp.Header.Get("Mcp-Session-Id")
	var res struct {
		Result struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"result"`
	}
	if err := json.Unmarshal(lastJSON(body), &res); err != nil || res.Result.ProtocolVersion == "" {
		t.Fatalf("initialize answered %s (%v)", body, err)
	}
	r.version = res.Result.ProtocolVersion
	if resp, body := r.post(t, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), nil); resp.StatusCode >= 300 {
		t.Fatalf("initialized: HTTP %d %s", resp.StatusCode, body)
	}
	return r, asynq.NewInspectorFromRedisClient(rdb)
}

// post sends body with the session's headers, changed by edit when not
// nil, and answers the response and its body.
func (r *rawMCP) post(t *testing.T, body []byte, edit func(http.Header)) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+malformedToken)
	if r.session != "" {
		req.Header.Set("Mcp-Session-Id", r.session)
	}
	if r.version != "" {
		req.Header.Set("MCP-Protocol-Version", r.version)
	}
	if edit != nil {
		edit(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return resp, b
}

// lastJSON returns the JSON of a body: the body itself, or the last data
// line of an event stream.
func lastJSON(body []byte) []byte {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		return trimmed
	}
	var last []byte
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 2<<20)
	for sc.Scan() {
		if d, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:")); ok {
			last = append([]byte(nil), bytes.TrimSpace(d)...)
		}
	}
	return last
}

// decode reads an answer out of a response.
func decode(resp *http.Response, body []byte, took time.Duration) answer {
	a := answer{status: resp.StatusCode, duration: took}
	var msg struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Result *struct {
			IsError bool `json:"isError"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
	}
	if err := json.Unmarshal(lastJSON(body), &msg); err != nil {
		a.message = strings.TrimSpace(string(body))
		return a
	}
	switch {
	case msg.Error != nil:
		a.rpcCode, a.message = msg.Error.Code, msg.Error.Message
	case msg.Result != nil:
		a.toolErr, a.toolOK = msg.Result.IsError, !msg.Result.IsError
		for _, c := range msg.Result.Content {
			a.message += c.Text
		}
	default:
		a.message = strings.TrimSpace(string(body))
	}
	return a
}

// call is a tools/call request body.
func call(tool string, args any) []byte {
	b, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": tool, "arguments": args}})
	if err != nil {
		panic(err)
	}
	return b
}

// TestMalformedRequests posts malformed MCP requests over HTTP and records
// what each gets: every one must get a clear error (an HTTP 4xx, a
// JSON-RPC error or a tool error, with a message) within seconds, never a
// 5xx, and none may enqueue a job.
func TestMalformedRequests(t *testing.T) {
	srv, insp := newRawMCP(t)
	nested := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	tests := []struct {
		name string
		body []byte
		edit func(http.Header)
		// want is the kind of answer expected; every kind is an error.
		want string
		// says is a piece of the message that must appear.
		says string
	}{
		{"invalid JSON", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call",`), nil, "HTTP 400, JSON-RPC -32700", "not valid json"},
		{"empty body", nil, nil, "HTTP 400, JSON-RPC -32700", "not valid json"},
		{"a JSON array (batch)", []byte(`[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`), nil, "HTTP 400, JSON-RPC -32700", "not valid json"},
		{"params is a string", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"run_big_query"}`), nil, "JSON-RPC -32600", "unparsable"},
		{"unknown method", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/execute","params":{}}`), nil, "JSON-RPC -32601", "not found"},
		{"unknown tool", call("drop_database", map[string]any{}), nil, "JSON-RPC -32602", "drop_database"},
		{"no tool name", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}`), nil, "JSON-RPC -32602", "not found"},
		{"tool name of 100 KiB", call(strings.Repeat("t", 100<<10), map[string]any{}), nil, "JSON-RPC -32602", "not found"},
		{"arguments is an array", call("run_big_query", []any{"SELECT 1"}), nil, "tool error", "must be a JSON object"},
		{"arguments is a string", call("run_big_query", "SELECT 1"), nil, "tool error", "must be a JSON object"},
		{"sql is a number", call("run_big_query", map[string]any{"sql": 42, "wait_seconds": 0}), nil, "tool error", "sql"},
		{"bbox is a string", call("coverage_aspect_analysis", map[string]any{"coverage_id": "dem_30m", "bbox": "116,39,117,40", "wait_seconds": 0}), nil, "tool error", "bbox"},
		{"bbox has 3 numbers", call("coverage_aspect_analysis", map[string]any{"coverage_id": "dem_30m", "bbox": []float64{116, 39, 117}, "wait_seconds": 0}), nil, "tool error", "bbox"},
		{"wait_seconds is a string", call("run_big_query", map[string]any{"sql": "SELECT 1", "wait_seconds": "soon"}), nil, "tool error", "wait_seconds"},
		{"wait_seconds is 1e400", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_big_query","arguments":{"sql":"SELECT 1","wait_seconds":1e400}}}`), nil, "JSON-RPC -32600", "1e400"},
		{"output is a string", call("submit_batch_task", map[string]any{"name": "n", "code": "c", "output": "here", "wait_seconds": 0}), nil, "tool error", "output"},
		{"unknown argument", call("run_big_query", map[string]any{"sql": "SELECT 1", "colour": "red", "wait_seconds": 0}), nil, "tool error", "colour"},
		{"argument name in another case", call("run_big_query", map[string]any{"SQL": "SELECT 1", "wait_seconds": 0}), nil, "tool error", "invalid SQL: is not an argument of this tool (names are exact and case-sensitive"},
		{"argument name with a long s", call("run_big_query", map[string]any{"ſql": "SELECT 1", "wait_seconds": 0}), nil, "tool error", "invalid ſql: is not an argument"},
		{"argument given twice", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_big_query","arguments":{"sql":"SELECT 1","sql":"SELECT 2","wait_seconds":0}}}`), nil, "tool error", "invalid sql: is given twice"},
		{"max_rows is 2.5", call("run_big_query", map[string]any{"sql": "SELECT 1", "max_rows": 2.5, "wait_seconds": 0}), nil, "tool error", "invalid max_rows: must be an integer, got 2.5"},
		{"bbox element is a string", call("coverage_aspect_analysis", map[string]any{"coverage_id": "dem_30m", "bbox": []any{116, 39, 117, "40"}, "wait_seconds": 0}), nil, "tool error", "invalid bbox[3]: must be a number"},
		{"bbox element out of range", call("coverage_aspect_analysis", map[string]any{"coverage_id": "dem_30m", "bbox": []any{116, 39, 117, 91}, "wait_seconds": 0}), nil, "tool error", "invalid bbox[3]"},
		{"unknown field in output", call("submit_batch_task", map[string]any{"name": "n", "code": "c", "output": map[string]any{"format": "CSV", "path": "/o", "foo": 1}, "wait_seconds": 0}), nil, "tool error", "invalid output.foo: is not a field of output"},
		{"output missing", call("submit_batch_task", map[string]any{"name": "n", "code": "c", "wait_seconds": 0}), nil, "tool error", "invalid output: is missing"},
		{"missing required argument", call("execute_code_to_dag", map[string]any{"language": "python", "wait_seconds": 0}), nil, "tool error", "code"},
		{"sql of 300 KiB", call("run_big_query", map[string]any{"sql": "SELECT '" + strings.Repeat("x", 300<<10) + "'", "wait_seconds": 0}), nil, "tool error", "sql"},
		{"job_id of 10 KiB", call("get_job", map[string]any{"job_id": "aspect-" + strings.Repeat("9", 10<<10)}), nil, "tool error", "job not found"},
		{"arguments nested 20000 deep", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_jobs","arguments":` + nested + `}}`), nil, "HTTP 400, JSON-RPC -32700", "not valid json"},
		{"body of 3 MiB", call("run_big_query", map[string]any{"sql": strings.Repeat("x", 3<<20)}), nil, "HTTP 413", ""},
		{"no Authorization header", call("list_jobs", map[string]any{}), func(h http.Header) { h.Del("Authorization") }, "HTTP 401", "Bearer"},
		{"wrong bearer token", call("list_jobs", map[string]any{}), func(h http.Header) { h.Set("Authorization", "Bearer nope") }, "HTTP 401", "Bearer"},
		{"Content-Type text/plain", call("list_jobs", map[string]any{}), func(h http.Header) { h.Set("Content-Type", "text/plain") }, "HTTP 400", "content type"},
		{"no session ID", call("list_jobs", map[string]any{}), func(h http.Header) { h.Del("Mcp-Session-Id") }, "HTTP 404", "session"},
		{"unknown session ID", call("list_jobs", map[string]any{}), func(h http.Header) { h.Set("Mcp-Session-Id", "mcp-session-00000000") }, "HTTP 404", "session"},
	}
	var table strings.Builder
	table.WriteString("| request | HTTP status | answer | message |\n| --- | --- | --- | --- |\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			resp, body := srv.post(t, tt.body, tt.edit)
			a := decode(resp, body, time.Since(start))
			fmt.Fprintf(&table, "| %s | %d | %s | %s |\n", tt.name, a.status, a.kind(), cell(a.message))
			if a.status >= 500 {
				t.Errorf("HTTP %d: %s", a.status, a.message)
			}
			if a.duration > 10*time.Second {
				t.Errorf("answered after %v", a.duration)
			}
			if a.toolOK || (a.status < 400 && a.rpcCode == 0 && !a.toolErr) {
				t.Errorf("not an error: %s %q", a.kind(), a.message)
			}
			if strings.TrimSpace(a.message) == "" {
				t.Errorf("%s without a message", a.kind())
			}
			if tt.want != "" && a.kind() != tt.want {
				t.Errorf("answer %s %q; want %s", a.kind(), a.message, tt.want)
			}
			if !strings.Contains(strings.ToLower(a.message), strings.ToLower(tt.says)) {
				t.Errorf("message %q does not say %q", a.message, tt.says)
			}
		})
	}
	t.Logf("malformed requests:\n%s", table.String())
	if n := queued(t, insp); n != 0 {
		t.Errorf("malformed requests enqueued %d jobs", n)
	}
}

// cell shortens a message for a Markdown table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
}

// queued counts the jobs in every queue, whatever their state.
func queued(t *testing.T, insp *asynq.Inspector) int {
	t.Helper()
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
		n += info.Size + info.Completed + info.Archived
	}
	return n
}
