package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/mcp"
)

// replica starts a second MCP server on the stack's Redis, with its own job
// client, and returns its URL and a function that stops it.
func (s *stack) replica(t *testing.T) (string, func()) {
	t.Helper()
	jc := store.NewClient(s.rdb, store.Options{RecheckInterval: 200 * time.Millisecond})
	tokens, err := mcp.ParseTokens("alice:alice-secret,bob:bob-secret")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mcp.New(mcp.Options{Jobs: jc, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	hs := httptest.NewServer(m.HTTPHandler())
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			hs.Close()
			_ = jc.Close()
		}
	}
	t.Cleanup(stop)
	return hs.URL + "/mcp", stop
}

// alternate sends each request to the next of urls in turn: replicas behind
// a load balancer without sticky sessions.
type alternate struct {
	urls []*url.URL
	n    atomic.Int64
}

func (a *alternate) RoundTrip(r *http.Request) (*http.Response, error) {
	u := a.urls[int(a.n.Add(1))%len(a.urls)]
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host = u.Scheme, u.Host
	r.Host = u.Host
	return http.DefaultTransport.RoundTrip(r)
}

func alternating(t *testing.T, urls ...string) *http.Client {
	a := &alternate{}
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		a.urls = append(a.urls, u)
	}
	return &http.Client{Transport: a}
}

// taskClient connects a 2025-11-25 client as who; caps are its
// capabilities (with Tasks for a tasks-capable client).
func taskClient(t *testing.T, mcpURL, who string, caps mcpgo.ClientCapabilities, hc *http.Client) (*mcpclient.Client, *mcpgo.InitializeResult) {
	t.Helper()
	opts := []transport.StreamableHTTPCOption{transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + who + "-secret"})}
	if hc != nil {
		opts = append(opts, transport.WithHTTPBasicClient(hc))
	}
	c, err := mcpclient.NewStreamableHttpClient(mcpURL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	res, err := c.Initialize(t.Context(), mcpgo.InitializeRequest{Params: mcpgo.InitializeParams{
		ProtocolVersion: mcpgo.ProtocolVersion20251125,
		ClientInfo:      mcpgo.Implementation{Name: "tasks-e2e", Version: "1"},
		Capabilities:    caps,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c, res
}

var legacyTasks = mcpgo.ClientCapabilities{Tasks: &mcpgo.TasksCapability{List: &struct{}{}, Cancel: &struct{}{}}}

var aspectArgs = map[string]any{"coverage_id": "dem_30m", "bbox": []float64{116.0, 39.8, 116.1, 39.9}}

// rawIDs numbers raw requests (small: mcp-go's stdio client matches
// answers by IDs read as float64).
var rawIDs atomic.Int64

// rawCall sends a request through the client's transport and answers its
// raw result, or its error.
func rawCall(t *testing.T, c *mcpclient.Client, method string, params any) (json.RawMessage, *mcpgo.JSONRPCErrorDetails) {
	t.Helper()
	res, err := c.GetTransport().SendRequest(t.Context(), transport.JSONRPCRequest{JSONRPC: "2.0", ID: mcpgo.NewRequestId(rawIDs.Add(1) + 1000), Method: method, Params: params})
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return res.Result, res.Error
}

// createTask calls a tool as a 2025-11-25 task and answers the task.
func createTask(t *testing.T, c *mcpclient.Client, name string, args map[string]any) mcpgo.Task {
	t.Helper()
	return createTaskTTL(t, c, name, args, 600000)
}

func createTaskTTL(t *testing.T, c *mcpclient.Client, name string, args map[string]any, ttlMS int64) mcpgo.Task {
	t.Helper()
	raw, rpcErr := rawCall(t, c, "tools/call", map[string]any{"name": name, "arguments": args, "task": map[string]any{"ttl": ttlMS}})
	if rpcErr != nil {
		t.Fatalf("tools/call %s as a task: %+v", name, rpcErr)
	}
	var ct struct {
		Task mcpgo.Task `json:"task"`
	}
	if err := json.Unmarshal(raw, &ct); err != nil || ct.Task.TaskId == "" {
		t.Fatalf("tools/call %s as a task: not a CreateTaskResult: %s", name, raw)
	}
	return ct.Task
}

func TestTasksAcrossReplicas(t *testing.T) {
	s := newStack(t, simulator.Config{Latency: 300 * time.Millisecond})
	urlB, _ := s.replica(t)
	urlC, stopC := s.replica(t)
	onC, init := taskClient(t, urlC, "alice", legacyTasks, nil)
	if init.Capabilities.Tasks == nil || init.Capabilities.Tasks.List == nil || init.Capabilities.Tasks.Cancel == nil ||
		init.Capabilities.Tasks.Requests == nil || init.Capabilities.Tasks.Requests.Tools == nil {
		t.Fatalf("tasks capability not advertised: %+v", init.Capabilities)
	}
	task := createTask(t, onC, "coverage_aspect_analysis", aspectArgs)
	if task.Status != mcpgo.TaskStatusWorking || task.TTL == nil || *task.TTL != 600000 || task.PollInterval == nil || *task.PollInterval != 1000 ||
		!strings.HasPrefix(task.TaskId, "aspect-") || task.CreatedAt == "" {
		t.Fatalf("created task: %+v", task)
	}
	// The replica that created the task goes away; the others answer.
	stopC()

	onB, _ := taskClient(t, urlB, "alice", legacyTasks, nil)
	got, err := onB.GetTask(t.Context(), mcpgo.GetTaskRequest{Params: mcpgo.GetTaskParams{TaskId: task.TaskId}})
	if err != nil || got.TaskId != task.TaskId || got.CreatedAt != task.CreatedAt {
		t.Fatalf("tasks/get on another replica: %+v, %v", got, err)
	}
	// A session that goes from replica to replica at each request.
	both, _ := taskClient(t, s.mcpURL, "alice", legacyTasks, alternating(t, s.mcpURL, urlB))
	res, err := both.TaskResult(t.Context(), mcpgo.TaskResultRequest{Params: mcpgo.TaskResultParams{TaskId: task.TaskId}})
	if err != nil || res.IsError || len(res.Content) == 0 {
		t.Fatalf("tasks/result: %+v, %v", res, err)
	}
	var v view
	if err := json.Unmarshal([]byte(res.Content[0].(mcpgo.TextContent).Text), &v); err != nil {
		t.Fatal(err)
	}
	checkCompletedAspect(t, v)
	if v.JobID != task.TaskId {
		t.Errorf("task %s answers job %s", task.TaskId, v.JobID)
	}
	for range 2 { // both replicas
		got, err = both.GetTask(t.Context(), mcpgo.GetTaskRequest{Params: mcpgo.GetTaskParams{TaskId: task.TaskId}})
		if err != nil || got.Status != mcpgo.TaskStatusCompleted {
			t.Fatalf("tasks/get after the end: %+v, %v", got, err)
		}
		list, err := both.ListTasks(t.Context(), mcpgo.ListTasksRequest{})
		if err != nil || !slices.ContainsFunc(list.Tasks, func(x mcpgo.Task) bool { return x.TaskId == task.TaskId }) {
			t.Fatalf("tasks/list: %+v, %v", list, err)
		}
	}

	// Bob sees nothing of alice's task, the same as of no task at all.
	bob, _ := taskClient(t, urlB, "bob", legacyTasks, nil)
	if _, err := bob.GetTask(t.Context(), mcpgo.GetTaskRequest{Params: mcpgo.GetTaskParams{TaskId: task.TaskId}}); err == nil || !strings.Contains(err.Error(), "task not found") {
		t.Errorf("bob's tasks/get of alice's task: %v", err)
	}
	if _, err := bob.TaskResult(t.Context(), mcpgo.TaskResultRequest{Params: mcpgo.TaskResultParams{TaskId: task.TaskId}}); err == nil || !strings.Contains(err.Error(), "task not found") {
		t.Errorf("bob's tasks/result of alice's task: %v", err)
	}
	if _, err := bob.CancelTask(t.Context(), mcpgo.CancelTaskRequest{Params: mcpgo.CancelTaskParams{TaskId: task.TaskId}}); err == nil || !strings.Contains(err.Error(), "task not found") {
		t.Errorf("bob's tasks/cancel of alice's task: %v", err)
	}
	if list, err := bob.ListTasks(t.Context(), mcpgo.ListTasksRequest{}); err != nil || len(list.Tasks) != 0 {
		t.Errorf("bob's tasks/list: %+v, %v", list, err)
	}
	// A job that is not a task is no task.
	plain := callView(t, s.as(t, "alice"), "execute_code_to_dag", map[string]any{"code": "Image('dem_30m')", "language": "python", "wait_seconds": 0})
	if _, err := both.GetTask(t.Context(), mcpgo.GetTaskRequest{Params: mcpgo.GetTaskParams{TaskId: plain.JobID}}); err == nil {
		t.Errorf("a plain job answers as a task")
	}
}

func TestTaskCancelOnAnotherReplica(t *testing.T) {
	s := newStack(t, simulator.Config{Latency: time.Minute})
	urlB, _ := s.replica(t)
	onA, _ := taskClient(t, s.mcpURL, "alice", legacyTasks, nil)
	onB, _ := taskClient(t, urlB, "alice", legacyTasks, nil)
	task := createTask(t, onA, "run_big_query", map[string]any{"sql": "SELECT region FROM landcover LIMIT 1"})
	waitUntil(t, 10*time.Second, func() bool {
		got, err := onB.GetTask(t.Context(), mcpgo.GetTaskRequest{Params: mcpgo.GetTaskParams{TaskId: task.TaskId}})
		return err == nil && strings.HasPrefix(got.StatusMessage, "running")
	})
	cancelled, err := onB.CancelTask(t.Context(), mcpgo.CancelTaskRequest{Params: mcpgo.CancelTaskParams{TaskId: task.TaskId}})
	if err != nil || cancelled.Status != mcpgo.TaskStatusCancelled {
		t.Fatalf("tasks/cancel: %+v, %v", cancelled, err)
	}
	got, err := onA.GetTask(t.Context(), mcpgo.GetTaskRequest{Params: mcpgo.GetTaskParams{TaskId: task.TaskId}})
	if err != nil || got.Status != mcpgo.TaskStatusCancelled {
		t.Fatalf("tasks/get after cancel: %+v, %v", got, err)
	}
	if _, err := onA.CancelTask(t.Context(), mcpgo.CancelTaskRequest{Params: mcpgo.CancelTaskParams{TaskId: task.TaskId}}); err == nil || !strings.Contains(err.Error(), "already ended") {
		t.Errorf("cancel of a cancelled task: %v", err)
	}
	// cancel_job and tasks/cancel are one: the job is cancelled.
	v := callView(t, s.as(t, "alice"), "get_job", map[string]any{"job_id": task.TaskId})
	if v.State != "cancelled" {
		t.Errorf("job after tasks/cancel: %+v", v)
	}
}

// toolExecution lists each tool's execution.taskSupport ("" when absent).
func toolExecution(t *testing.T, c *mcpclient.Client) map[string]string {
	t.Helper()
	raw, rpcErr := rawCall(t, c, "tools/list", map[string]any{})
	if rpcErr != nil {
		t.Fatalf("tools/list: %+v", rpcErr)
	}
	var list struct {
		Tools []struct {
			Name      string `json:"name"`
			Execution *struct {
				TaskSupport string `json:"taskSupport"`
			} `json:"execution"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tl := range list.Tools {
		out[tl.Name] = ""
		if tl.Execution != nil {
			out[tl.Name] = tl.Execution.TaskSupport
		}
	}
	return out
}

func TestTaskNegotiation(t *testing.T) {
	s := newStack(t, simulator.Config{})
	want := map[string]string{
		"coverage_aspect_analysis": "optional", "run_big_query": "optional", "execute_code_to_dag": "optional",
		"submit_batch_task": "optional", "query_task_status": "optional",
		"get_job": "forbidden", "list_jobs": "forbidden", "cancel_job": "forbidden",
	}

	// 2025-11-25 tasks.
	legacy, _ := taskClient(t, s.mcpURL, "alice", legacyTasks, nil)
	if got := toolExecution(t, legacy); !equalMaps(got, want) {
		t.Errorf("taskSupport for a tasks client: %v", got)
	}
	if _, rpcErr := rawCall(t, legacy, "tools/call", map[string]any{"name": "list_jobs", "arguments": map[string]any{}, "task": map[string]any{}}); rpcErr == nil || rpcErr.Code != -32601 {
		t.Errorf("list_jobs as a task: %+v", rpcErr)
	}
	// The TTL is honoured: the task goes after it, the job stays a job.
	short := createTaskTTL(t, legacy, "execute_code_to_dag", map[string]any{"code": "Image('dem_30m')", "language": "python"}, 300)
	if short.TTL == nil || *short.TTL != 300 {
		t.Errorf("ttl: %+v", short.TTL)
	}
	waitUntil(t, 10*time.Second, func() bool {
		_, err := legacy.GetTask(t.Context(), mcpgo.GetTaskRequest{Params: mcpgo.GetTaskParams{TaskId: short.TaskId}})
		return err != nil && strings.Contains(err.Error(), "task not found")
	})
	if v := callView(t, legacy, "get_job", map[string]any{"job_id": short.TaskId}); v.JobID != short.TaskId {
		t.Errorf("job of an expired task: %+v", v)
	}

	// The extension declared at initialize: the extension, not the legacy capability.
	ext, init := taskClient(t, s.mcpURL, "alice", mcpgo.ClientCapabilities{Extensions: map[string]any{mcp.ExtensionTasks: map[string]any{}}}, nil)
	if init.Capabilities.Tasks != nil || init.Capabilities.Extensions[mcp.ExtensionTasks] == nil {
		t.Errorf("extension client: capabilities %+v", init.Capabilities)
	}
	if got := toolExecution(t, ext); !equalMaps(got, want) {
		t.Errorf("taskSupport for an extension client: %v", got)
	}
	raw, rpcErr := rawCall(t, ext, "tools/call", map[string]any{"name": "run_big_query", "arguments": map[string]any{"sql": "SELECT 1"}})
	var flat map[string]any
	if rpcErr != nil || json.Unmarshal(raw, &flat) != nil || flat["resultType"] != "task" || flat["taskId"] == nil || flat["ttlMs"] == nil || flat["task"] != nil {
		t.Errorf("extension tools/call: %s %+v", raw, rpcErr)
	}

	// Neither: today's behaviour.
	plain, init := taskClient(t, s.mcpURL, "alice", mcpgo.ClientCapabilities{}, nil)
	if init.Capabilities.Tasks != nil || init.Capabilities.Extensions[mcp.ExtensionTasks] != nil {
		t.Errorf("plain client: capabilities %+v", init.Capabilities)
	}
	for name, support := range toolExecution(t, plain) {
		if support != "" {
			t.Errorf("plain client sees %s taskSupport %q", name, support)
		}
	}
	raw, rpcErr = rawCall(t, plain, "tools/call", map[string]any{"name": "execute_code_to_dag", "arguments": map[string]any{"code": "Image('dem_30m')", "language": "python"}, "task": map[string]any{}})
	if rpcErr != nil || !strings.Contains(string(raw), `"state\":\"completed\"`) {
		t.Errorf("plain client's tools/call with params.task: %s %+v", raw, rpcErr)
	}
	if _, rpcErr := rawCall(t, plain, "tasks/get", map[string]any{"taskId": "dag-x"}); rpcErr == nil || rpcErr.Code != -32601 {
		t.Errorf("plain client's tasks/get: %+v", rpcErr)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// modern sends one request on the 2026-07-28 wire, declaring the tasks
// extension when ext.
func modern(t *testing.T, mcpURL, who, method string, params map[string]any, ext bool, headers ...string) (map[string]any, *mcpgo.JSONRPCErrorDetails) {
	t.Helper()
	caps := map[string]any{}
	if ext {
		caps["extensions"] = map[string]any{mcp.ExtensionTasks: map[string]any{}}
	}
	if params == nil {
		params = map[string]any{}
	}
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "tasks-e2e", "version": "1"},
		"io.modelcontextprotocol/clientCapabilities": caps,
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, mcpURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+who+"-secret")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", method)
	if name, ok := params["name"].(string); ok {
		req.Header.Set("Mcp-Name", name)
	}
	if id, ok := params["taskId"].(string); ok {
		req.Header.Set("Mcp-Name", id)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		for line := range strings.SplitSeq(string(b), "\n") {
			if d, ok := strings.CutPrefix(line, "data:"); ok && strings.Contains(d, `"id"`) {
				b = []byte(d)
			}
		}
	}
	var msg struct {
		Result map[string]any             `json:"result"`
		Error  *mcpgo.JSONRPCErrorDetails `json:"error"`
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		t.Fatalf("%s: HTTP %d %s", method, resp.StatusCode, b)
	}
	return msg.Result, msg.Error
}

func TestTasksExtensionAcrossReplicas(t *testing.T) {
	s := newStack(t, simulator.Config{Latency: 200 * time.Millisecond})
	urlB, _ := s.replica(t)

	disc, rpcErr := modern(t, s.mcpURL, "alice", "server/discover", nil, true)
	caps, _ := disc["capabilities"].(map[string]any)
	exts, _ := caps["extensions"].(map[string]any)
	if rpcErr != nil || exts[mcp.ExtensionTasks] == nil || caps["tasks"] != nil {
		t.Fatalf("server/discover: %v %+v", disc, rpcErr)
	}
	created, rpcErr := modern(t, s.mcpURL, "alice", "tools/call", map[string]any{"name": "coverage_aspect_analysis", "arguments": aspectArgs}, true)
	id, _ := created["taskId"].(string)
	if rpcErr != nil || created["resultType"] != "task" || id == "" || created["ttlMs"] == nil || created["pollIntervalMs"] != float64(1000) || created["ttl"] != nil {
		t.Fatalf("tools/call: %v %+v", created, rpcErr)
	}
	var got map[string]any
	waitUntil(t, 10*time.Second, func() bool {
		got, rpcErr = modern(t, urlB, "alice", "tasks/get", map[string]any{"taskId": id}, true)
		return rpcErr == nil && got["status"] == "completed"
	})
	res, _ := got["result"].(map[string]any)
	content, _ := res["content"].([]any)
	if len(content) == 0 || res["isError"] == true || got["error"] != nil {
		t.Fatalf("completed task: %v", got)
	}
	if ack, rpcErr := modern(t, urlB, "alice", "tasks/cancel", map[string]any{"taskId": id}, true); rpcErr != nil || len(ack) != 1 || ack["resultType"] != "complete" {
		t.Errorf("tasks/cancel of an ended task: %v %+v", ack, rpcErr)
	}
	if _, rpcErr := modern(t, urlB, "bob", "tasks/get", map[string]any{"taskId": id}, true); rpcErr == nil || rpcErr.Code != -32602 {
		t.Errorf("bob's tasks/get: %+v", rpcErr)
	}
	// The routing headers must name the method and the task.
	if _, rpcErr := modern(t, urlB, "alice", "tasks/get", map[string]any{"taskId": id}, true, "Mcp-Name", "another-task"); rpcErr == nil || rpcErr.Code != -32020 {
		t.Errorf("tasks/get with a wrong Mcp-Name: %+v", rpcErr)
	}
	if _, rpcErr := modern(t, urlB, "alice", "tasks/get", map[string]any{"taskId": id}, true, "Mcp-Method", "tasks/cancel"); rpcErr == nil || rpcErr.Code != -32020 {
		t.Errorf("tasks/get with a wrong Mcp-Method: %+v", rpcErr)
	}
	// Without the extension, discover does not advertise it.
	disc, _ = modern(t, s.mcpURL, "alice", "server/discover", nil, false)
	if caps, _ := disc["capabilities"].(map[string]any); caps["tasks"] != nil || caps["extensions"] != nil {
		t.Errorf("server/discover without the extension: %v", caps)
	}
	for _, method := range []string{"tasks/list", "tasks/result"} {
		if _, rpcErr := modern(t, urlB, "alice", method, map[string]any{"taskId": id}, true); rpcErr == nil || rpcErr.Code != -32601 {
			t.Errorf("%s: %+v", method, rpcErr)
		}
	}
	// A failed job is a tool error: completed with isError.
	created, _ = modern(t, s.mcpURL, "alice", "tools/call", map[string]any{"name": "run_big_query", "arguments": map[string]any{"sql": "SELEC nothing"}}, true)
	id, _ = created["taskId"].(string)
	waitUntil(t, 10*time.Second, func() bool {
		got, rpcErr = modern(t, urlB, "alice", "tasks/get", map[string]any{"taskId": id}, true)
		return rpcErr == nil && got["status"] != "working"
	})
	if res, _ := got["result"].(map[string]any); got["status"] != "completed" || res["isError"] != true {
		t.Errorf("failed job as a task: %v", got)
	}

	// Without the extension: no task, and the task methods are refused.
	sync, rpcErr := modern(t, s.mcpURL, "alice", "tools/call", map[string]any{"name": "execute_code_to_dag", "arguments": map[string]any{"code": "Image('dem_30m')", "language": "python"}}, false)
	if rpcErr != nil || sync["taskId"] != nil || sync["content"] == nil {
		t.Errorf("tools/call without the extension: %v %+v", sync, rpcErr)
	}
	if _, rpcErr := modern(t, s.mcpURL, "alice", "tasks/get", map[string]any{"taskId": id}, false); rpcErr == nil || rpcErr.Code != -32021 {
		t.Errorf("tasks/get without the extension: %+v", rpcErr)
	}
}

func TestTasksOverStdio(t *testing.T) {
	s := newStack(t, simulator.Config{Latency: 1500 * time.Millisecond})
	jc := store.NewClient(s.rdb, store.Options{RecheckInterval: 200 * time.Millisecond})
	t.Cleanup(func() { _ = jc.Close() })
	m, err := mcp.New(mcp.Options{Jobs: jc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	clientToServer, serverIn := io.Pipe()
	serverOut, serverToClient := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- m.ServeStdio(t.Context(), clientToServer, serverToClient) }()
	t.Cleanup(func() {
		_ = serverIn.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeStdio: %v", err)
		}
		_ = serverToClient.Close()
	})
	c := mcpclient.NewClient(transport.NewIO(serverOut, serverIn, io.NopCloser(strings.NewReader(""))))
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	init, err := c.Initialize(t.Context(), mcpgo.InitializeRequest{Params: mcpgo.InitializeParams{
		ProtocolVersion: mcpgo.ProtocolVersion20251125,
		ClientInfo:      mcpgo.Implementation{Name: "tasks-stdio", Version: "1"},
		Capabilities:    legacyTasks,
	}})
	if err != nil || init.Capabilities.Tasks == nil {
		t.Fatalf("initialize over stdio: %+v, %v", init, err)
	}
	task := createTask(t, c, "coverage_aspect_analysis", aspectArgs)
	res, err := c.TaskResult(t.Context(), mcpgo.TaskResultRequest{Params: mcpgo.TaskResultParams{TaskId: task.TaskId}})
	if err != nil || res.IsError || len(res.Content) == 0 {
		t.Fatalf("tasks/result over stdio: %+v, %v", res, err)
	}
	got, err := c.GetTask(t.Context(), mcpgo.GetTaskRequest{Params: mcpgo.GetTaskParams{TaskId: task.TaskId}})
	if err != nil || got.Status != mcpgo.TaskStatusCompleted {
		t.Fatalf("tasks/get over stdio: %+v, %v", got, err)
	}
	// Without a task, progress notifications stream out while the tool waits.
	var progress atomic.Int64
	c.OnNotification(func(n mcpgo.JSONRPCNotification) {
		if n.Method == "notifications/progress" {
			progress.Add(1)
		}
	})
	res2, err := c.CallTool(t.Context(), mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: "execute_code_to_dag",
		Arguments: map[string]any{"code": "Image('dem_30m')", "language": "javascript"},
		Meta:      &mcpgo.Meta{ProgressToken: "p-stdio"}}})
	if err != nil || res2.IsError {
		t.Fatalf("tools/call over stdio: %v %+v", err, res2)
	}
	if progress.Load() == 0 {
		t.Error("no progress notification over stdio during a 1.5 s job")
	}
	// The task is the local identity's: alice, over HTTP, does not see it.
	onHTTP, _ := taskClient(t, s.mcpURL, "alice", legacyTasks, nil)
	if _, err := onHTTP.GetTask(t.Context(), mcpgo.GetTaskRequest{Params: mcpgo.GetTaskParams{TaskId: task.TaskId}}); err == nil {
		t.Errorf("alice reads the local identity's task")
	}
}

func TestBatchTaskShowsProgress(t *testing.T) {
	s := newStack(t, simulator.Config{BatchDuration: 3 * time.Second})
	c, _ := taskClient(t, s.mcpURL, "alice", legacyTasks, nil)
	task := createTask(t, c, "submit_batch_task", submitArgs)
	if task.PollInterval == nil || *task.PollInterval != 5000 {
		t.Errorf("batch task's pollInterval: %v", task.PollInterval)
	}
	var msg string
	waitUntil(t, 10*time.Second, func() bool {
		got, err := c.GetTask(t.Context(), mcpgo.GetTaskRequest{Params: mcpgo.GetTaskParams{TaskId: task.TaskId}})
		if err != nil {
			t.Fatal(err)
		}
		msg = got.StatusMessage
		return got.Status == mcpgo.TaskStatusWorking && strings.Contains(msg, "platform task bt-") && strings.Contains(msg, "progress")
	})
	res, err := c.TaskResult(t.Context(), mcpgo.TaskResultRequest{Params: mcpgo.TaskResultParams{TaskId: task.TaskId}})
	if err != nil || res.IsError {
		t.Fatalf("tasks/result of a batch: %+v, %v (last status message %q)", res, err, msg)
	}
	got, err := c.GetTask(t.Context(), mcpgo.GetTaskRequest{Params: mcpgo.GetTaskParams{TaskId: task.TaskId}})
	if err != nil || got.Status != mcpgo.TaskStatusCompleted {
		t.Errorf("batch task after its end: %+v, %v", got, err)
	}
}
