package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/mcp"
	"github.com/mcpjobs/mcpjobs/worker"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// stack is the whole system in one test: Redis, the simulator, a worker and
// MCP over HTTP with two identities, alice and bob.
type stack struct {
	redis  *redistest.Server
	rdb    *redis.Client
	sim    *simulator.Simulator
	simURL string
	mcpURL string
}

func newStack(t *testing.T, simCfg simulator.Config) *stack {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	sim, err := simulator.New(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	simHTTP := httptest.NewServer(sim)
	t.Cleanup(simHTTP.Close)
	client, err := intranet.New(intranet.Config{BaseURL: simHTTP.URL, Username: simulator.DefaultUsername, Password: simulator.DefaultPassword})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(rdb, worker.Config{
		Client: client, Concurrency: 16,
		Retry:                worker.RetryPolicy{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond, AuthWait: 100 * time.Millisecond},
		QueueCheckInterval:   20 * time.Millisecond,
		DelayedCheckInterval: 50 * time.Millisecond,
		BatchPolling:         worker.BatchPolling{Min: 100 * time.Millisecond, Max: 300 * time.Millisecond},
		ShutdownTimeout:      2 * time.Second,
		Logger:               slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	jc := store.NewClient(rdb, store.Options{RecheckInterval: 200 * time.Millisecond})
	t.Cleanup(func() { _ = jc.Close() })
	tokens, err := mcp.ParseTokens("alice:alice-secret,bob:bob-secret")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mcp.New(mcp.Options{Jobs: jc, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	mcpHTTP := httptest.NewServer(m.HTTPHandler())
	t.Cleanup(mcpHTTP.Close)
	return &stack{redis: srv, rdb: rdb, sim: sim, simURL: simHTTP.URL, mcpURL: mcpHTTP.URL + "/mcp"}
}

// as connects an MCP client with the given identity's bearer token.
func (s *stack) as(t *testing.T, who string) *mcpclient.Client {
	t.Helper()
	c, err := mcpclient.NewStreamableHttpClient(s.mcpURL, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + who + "-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	initialize(t, c)
	return c
}

// jobView is the job view as a client decodes it.
type jobView struct {
	JobID  string `json:"job_id"`
	Type   string `json:"type"`
	State  string `json:"state"`
	Result *struct {
		Data     json.RawMessage `json:"data"`
		Attempts int             `json:"attempts"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Class   string `json:"class"`
		Message string `json:"message"`
	} `json:"error"`
	Batch *struct {
		TaskID string          `json:"task_id"`
		State  string          `json:"state"`
		Status json.RawMessage `json:"status"`
	} `json:"batch"`
}

// tool calls a tool and answers its text, and whether it is a tool error.
func tool(t *testing.T, c *mcpclient.Client, name string, args map[string]any) (string, bool) {
	t.Helper()
	res, err := c.CallTool(t.Context(), mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: name, Arguments: args}})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var b strings.Builder
	for _, ct := range res.Content {
		if tc, ok := ct.(mcpgo.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String(), res.IsError
}

// view calls a tool that must answer a job view.
func callView(t *testing.T, c *mcpclient.Client, name string, args map[string]any) jobView {
	t.Helper()
	text, isErr := tool(t, c, name, args)
	if isErr {
		t.Fatalf("%s: tool error: %s", name, text)
	}
	var v jobView
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("%s: %v in %s", name, err, text)
	}
	return v
}

func (v jobView) data(t *testing.T, into any) {
	t.Helper()
	if v.Result == nil {
		t.Fatalf("job %s (%s) has no result; error %+v", v.JobID, v.State, v.Error)
	}
	if err := json.Unmarshal(v.Result.Data, into); err != nil {
		t.Fatal(err)
	}
}

var submitArgs = map[string]any{"name": "aspect-beijing-2026", "code": "var a = Image('dem_30m').aspect()",
	"output": map[string]any{"format": "GeoTIFF", "path": "/data/out/aspect.tif"}}

func withArgs(base map[string]any, extra map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func TestInteractiveTools(t *testing.T) {
	s := newStack(t, simulator.Config{})
	alice := s.as(t, "alice")

	v := callView(t, alice, "run_big_query", map[string]any{"sql": "SELECT region, area_km2 FROM landcover WHERE class = 'forest' LIMIT 10"})
	var q struct {
		Columns  []string `json:"columns"`
		RowCount int      `json:"row_count"`
	}
	v.data(t, &q)
	if v.State != "completed" || len(q.Columns) != 2 || q.RowCount == 0 {
		t.Errorf("run_big_query: %s %+v", v.State, q)
	}

	v = callView(t, alice, "run_big_query", map[string]any{"sql": "SELEC nonsense"})
	if v.State != "failed" || v.Error == nil || v.Error.Code != 40001 || !strings.Contains(v.Error.Message, "syntax") {
		t.Errorf("bad SQL: %s %+v", v.State, v.Error)
	}

	v = callView(t, alice, "execute_code_to_dag", map[string]any{"code": "var dem = Image('dem_30m'); var a = dem.aspect(); Export(a, 'out')", "language": "javascript"})
	var d struct {
		NodeCount int `json:"node_count"`
	}
	v.data(t, &d)
	if v.State != "completed" || d.NodeCount != 3 {
		t.Errorf("execute_code_to_dag: %s %+v", v.State, d)
	}
}

// TestBatchLifecycle: one job, one life. The submit_batch_task job is
// active while its batch runs, waiting lasts until the batch ends, and the
// job ends as the batch did.
func TestBatchLifecycle(t *testing.T) {
	s := newStack(t, simulator.Config{BatchDuration: 2 * time.Second})
	alice := s.as(t, "alice")

	first := callView(t, alice, "submit_batch_task", withArgs(submitArgs, map[string]any{"wait_seconds": 0}))
	if first.State != "pending" && first.State != "active" {
		t.Errorf("right after the submit: %s", first.State)
	}
	var running jobView
	waitUntil(t, 10*time.Second, func() bool {
		running = callView(t, alice, "get_job", map[string]any{"job_id": first.JobID})
		return running.Batch != nil && running.Batch.State == "RUNNING"
	})
	if running.State != "active" || !strings.HasPrefix(running.Batch.TaskID, "bt-") {
		t.Errorf("while the batch runs: %s %+v", running.State, running.Batch)
	}
	done := callView(t, alice, "get_job", map[string]any{"job_id": first.JobID, "wait_seconds": 30})
	var st struct {
		State  string         `json:"state"`
		Result map[string]any `json:"result"`
	}
	done.data(t, &st)
	if done.State != "completed" || done.Batch == nil || done.Batch.State != "SUCCEEDED" || st.State != "SUCCEEDED" || st.Result["output_uri"] == nil {
		t.Fatalf("after the batch: %s %+v %+v", done.State, done.Batch, st)
	}
	// query_task_status answers from the job's record.
	statusCalls := s.sim.Stats().Calls["batch_status"]
	q := callView(t, alice, "query_task_status", map[string]any{"task_id": done.Batch.TaskID})
	q.data(t, &st)
	if st.State != "SUCCEEDED" || s.sim.Stats().Calls["batch_status"] != statusCalls {
		t.Errorf("query_task_status of a final task: %+v, status calls %d → %d", st, statusCalls, s.sim.Stats().Calls["batch_status"])
	}
	// A failing batch fails its job; submit_batch_task waits for the end.
	failed := callView(t, alice, "submit_batch_task", withArgs(submitArgs, map[string]any{"name": "will-fail", "wait_seconds": 30}))
	if failed.State != "failed" || failed.Error == nil || !strings.Contains(failed.Error.Message, "simulated failure") || failed.Batch.State != "FAILED" {
		t.Errorf("failing batch: %s %+v %+v", failed.State, failed.Error, failed.Batch)
	}
	if n := s.sim.Stats().BatchSubmissions; n != 2 {
		t.Errorf("batch_submissions = %d", n)
	}
	// list_jobs, newest first, with a state filter.
	text, _ := tool(t, alice, "list_jobs", map[string]any{"state": "completed"})
	var list struct {
		Jobs  []jobView `json:"jobs"`
		Count int       `json:"count"`
	}
	if err := json.Unmarshal([]byte(text), &list); err != nil {
		t.Fatal(err)
	}
	if list.Count != 1 || list.Jobs[0].JobID != first.JobID {
		t.Errorf("list_jobs: %s", text)
	}
}

func TestSubmitIdempotencyKey(t *testing.T) {
	s := newStack(t, simulator.Config{BatchDuration: time.Minute})
	alice, bob := s.as(t, "alice"), s.as(t, "bob")
	args := withArgs(submitArgs, map[string]any{"idempotency_key": "nightly-2026-11-26"})
	a1 := callView(t, alice, "submit_batch_task", args)
	a2 := callView(t, alice, "submit_batch_task", args)
	if a1.JobID != a2.JobID {
		t.Errorf("one key, two jobs: %s and %s", a1.JobID, a2.JobID)
	}
	if n := s.sim.Stats().BatchSubmissions; n != 1 {
		t.Errorf("batch_submissions = %d after two submits with one key", n)
	}
	b1 := callView(t, bob, "submit_batch_task", args)
	if b1.JobID == a1.JobID {
		t.Error("bob's key answered alice's job")
	}
}

// TestSubmitOnceThroughLostReplies: the platform accepts the submit but the
// answer is lost (as when a worker dies between the platform's answer and
// the record); the retry sends the same Idempotency-Key and the platform
// starts nothing new.
func TestSubmitOnceThroughLostReplies(t *testing.T) {
	s := newStack(t, simulator.Config{BatchDuration: time.Minute})
	if err := s.sim.SetFaults(simulator.Faults{LostReply: 1}); err != nil {
		t.Fatal(err)
	}
	alice := s.as(t, "alice")
	v := callView(t, alice, "submit_batch_task", withArgs(submitArgs, map[string]any{"wait_seconds": 0}))
	waitUntil(t, 20*time.Second, func() bool { return s.sim.Stats().IdempotentReplays >= 2 })
	if err := s.sim.SetFaults(simulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, func() bool {
		v = callView(t, alice, "get_job", map[string]any{"job_id": v.JobID})
		return v.Batch != nil
	})
	if v.State != "active" {
		t.Fatalf("submit: %s %+v", v.State, v.Error)
	}
	if st := s.sim.Stats(); st.BatchSubmissions != 1 {
		t.Errorf("batch_submissions = %d with %d replays; want 1", st.BatchSubmissions, st.IdempotentReplays)
	}
}

// TestConcurrentStatusQueriesShareACall: 100 concurrent queries of one
// identity for one task cost at most 2 platform calls (one per 2-second
// window), here for a task submitted elsewhere, where the operator lets the
// service token answer.
func TestConcurrentStatusQueriesShareACall(t *testing.T) {
	s := newStack(t, simulator.Config{BatchDuration: time.Minute, Latency: 100 * time.Millisecond})
	taskID := submitElsewhere(t, s)
	jc := store.NewClient(s.rdb, store.Options{RecheckInterval: 100 * time.Millisecond, ServiceTokenStatus: true})
	t.Cleanup(func() { _ = jc.Close() })
	var wg sync.WaitGroup
	var mu sync.Mutex
	states := map[string]int{}
	ids := map[string]bool{}
	for range 100 {
		wg.Go(func() {
			v, err := jc.QueryStatus(context.Background(), "alice", taskID, 0, 20*time.Second, "", nil)
			if err != nil || v.Result == nil {
				t.Errorf("query: %+v %v", v, err)
				return
			}
			var st struct {
				State string `json:"state"`
			}
			_ = json.Unmarshal(v.Result.Data, &st)
			mu.Lock()
			states[st.State]++
			ids[v.JobID] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if n := s.sim.Stats().Calls["batch_status"]; n < 1 || n > 2 {
		t.Errorf("100 concurrent queries made %d status calls; want 1 or 2", n)
	}
	if states["QUEUED"]+states["RUNNING"] != 100 {
		t.Errorf("states = %v", states)
	}
	for id := range ids {
		if strings.Contains(id, taskID) {
			t.Errorf("status job ID %s is guessable from the task ID", id)
		}
	}
	// An unknown task fails with the platform's not found.
	v, err := jc.QueryStatus(t.Context(), "alice", "bt-0000000000000000", 0, 20*time.Second, "", nil)
	if err != nil || v.State != jobs.StateFailed || v.Error == nil || v.Error.Code != 40004 {
		t.Errorf("unknown task: %+v %v", v, err)
	}
}

// submitElsewhere submits a batch task straight to the platform, as another
// system would, and answers its ID.
func submitElsewhere(t *testing.T, s *stack) string {
	t.Helper()
	tok := serviceToken(t, s)
	client, err := intranet.New(intranet.Config{BaseURL: s.simURL})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Call(t.Context(), intranet.OpBatchSubmit, tok, submitArgs)
	if err != nil {
		t.Fatal(err)
	}
	var sub struct {
		TaskID string `json:"task_id"`
	}
	if err := json.Unmarshal(resp.Data, &sub); err != nil {
		t.Fatal(err)
	}
	return sub.TaskID
}

// serviceToken authenticates as the service account.
func serviceToken(t *testing.T, s *stack) string {
	t.Helper()
	client, err := intranet.New(intranet.Config{BaseURL: s.simURL, Username: simulator.DefaultUsername, Password: simulator.DefaultPassword})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := client.Authenticate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return tok.Value
}

// TestStatusBelongsToItsCaller: a task submitted through mcpjobs is its
// owner's; any other task is asked of the platform with the caller's own
// token, never the service token unless the operator allows it.
func TestStatusBelongsToItsCaller(t *testing.T) {
	// Bob has a platform account of his own: his token does not end the
	// service account's.
	s := newStack(t, simulator.Config{BatchDuration: time.Minute,
		Accounts: map[string]string{simulator.DefaultUsername: simulator.DefaultPassword, "bob": "bob-password"}})
	alice, bob := s.as(t, "alice"), s.as(t, "bob")
	sub := callView(t, alice, "submit_batch_task", withArgs(submitArgs, map[string]any{"wait_seconds": 0}))
	var job jobView
	waitUntil(t, 10*time.Second, func() bool {
		job = callView(t, alice, "get_job", map[string]any{"job_id": sub.JobID})
		return job.Batch != nil
	})
	taskID := job.Batch.TaskID
	elsewhere := submitElsewhere(t, s)

	// The owner reads her task, from the record or the platform.
	for _, age := range []int{3600, 0} {
		v := callView(t, alice, "query_task_status", map[string]any{"task_id": taskID, "max_age_seconds": age})
		if v.State != "completed" || v.Result == nil {
			t.Errorf("alice, max_age %d: %+v", age, v)
		}
	}
	// Nobody else does, nor reads a task submitted elsewhere, without a
	// token of their own; the answer does not tell the two apart.
	var answers []string
	for _, id := range []string{taskID, elsewhere} {
		text, isErr := tool(t, bob, "query_task_status", map[string]any{"task_id": id, "max_age_seconds": 0})
		if !isErr || !strings.Contains(text, "auth_token") {
			t.Errorf("bob reads %s: %s", id, text)
		}
		answers = append(answers, text)
	}
	if answers[0] != answers[1] {
		t.Errorf("answers differ: %q / %q", answers[0], answers[1])
	}
	// With his own token, the platform decides.
	bobClient, err := intranet.New(intranet.Config{BaseURL: s.simURL, Username: "bob", Password: "bob-password"})
	if err != nil {
		t.Fatal(err)
	}
	bobToken, err := bobClient.Authenticate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	v := callView(t, bob, "query_task_status", map[string]any{"task_id": elsewhere, "auth_token": bobToken.Value})
	if v.State != "completed" {
		t.Errorf("bob with his own token: %+v", v)
	}
	// Bob can neither read nor cancel alice's job.
	for _, name := range []string{"get_job", "cancel_job"} {
		if text, isErr := tool(t, bob, name, map[string]any{"job_id": sub.JobID}); !isErr || !strings.Contains(text, "job not found") {
			t.Errorf("bob %s: %s", name, text)
		}
	}
	// The service token answers for tasks nobody submitted here only
	// where the operator allows it, and never for another's task.
	jc := store.NewClient(s.rdb, store.Options{ServiceTokenStatus: true})
	t.Cleanup(func() { _ = jc.Close() })
	if v, err := jc.QueryStatus(t.Context(), "bob", elsewhere, 0, 20*time.Second, "", nil); err != nil || v.State != jobs.StateCompleted {
		t.Errorf("bob, service token allowed, task from elsewhere: %+v %v", v, err)
	}
	if _, err := jc.QueryStatus(t.Context(), "bob", taskID, 0, 20*time.Second, "", nil); !errors.Is(err, jobs.ErrInvalid) {
		t.Errorf("bob, service token allowed, alice's task: %v", err)
	}
}

func TestForeignJobIsInvisible(t *testing.T) {
	s := newStack(t, simulator.Config{})
	alice, bob := s.as(t, "alice"), s.as(t, "bob")
	v := callView(t, alice, "execute_code_to_dag", map[string]any{"code": "Image('dem_30m')", "language": "python"})
	for _, call := range []struct {
		tool string
		args map[string]any
	}{
		{"get_job", map[string]any{"job_id": v.JobID}},
		{"get_job", map[string]any{"job_id": v.JobID, "wait_seconds": 1}},
		{"cancel_job", map[string]any{"job_id": v.JobID}},
	} {
		text, isErr := tool(t, bob, call.tool, call.args)
		unknown, _ := tool(t, bob, call.tool, map[string]any{"job_id": "dag-00000000-0000-0000-0000-000000000000"})
		if !isErr || !strings.Contains(text, "job not found") || strings.ReplaceAll(text, v.JobID, "X") != strings.ReplaceAll(unknown, "dag-00000000-0000-0000-0000-000000000000", "X") {
			t.Errorf("bob %s on alice's job: %q (unknown job: %q)", call.tool, text, unknown)
		}
	}
	text, _ := tool(t, bob, "list_jobs", map[string]any{})
	if strings.Contains(text, v.JobID) {
		t.Errorf("bob's list shows alice's job: %s", text)
	}
}

func TestCancelInEachState(t *testing.T) {
	s := newStack(t, simulator.Config{BatchDuration: time.Minute})
	alice := s.as(t, "alice")
	dag := map[string]any{"code": "Image('dem_30m')", "language": "javascript", "wait_seconds": 0}
	insp := asynq.NewInspectorFromRedisClient(s.rdb)

	t.Run("pending", func(t *testing.T) {
		if err := insp.PauseQueue(jobs.QueueInteractive); err != nil {
			t.Fatal(err)
		}
		v := callView(t, alice, "execute_code_to_dag", dag)
		c := callView(t, alice, "cancel_job", map[string]any{"job_id": v.JobID})
		if err := insp.UnpauseQueue(jobs.QueueInteractive); err != nil {
			t.Fatal(err)
		}
		if c.State != "cancelled" {
			t.Errorf("state = %s", c.State)
		}
	})
	t.Run("retry", func(t *testing.T) {
		if err := s.sim.SetFaults(simulator.Faults{HTTP5xx: 1}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.sim.SetFaults(simulator.Faults{}) }()
		v := callView(t, alice, "execute_code_to_dag", dag)
		waitUntil(t, 10*time.Second, func() bool {
			return callView(t, alice, "get_job", map[string]any{"job_id": v.JobID}).State == "retry"
		})
		c := callView(t, alice, "cancel_job", map[string]any{"job_id": v.JobID})
		if c.State != "cancelled" {
			t.Errorf("state = %s", c.State)
		}
	})
	t.Run("active", func(t *testing.T) {
		s.sim.SetLatency(10*time.Second, 0)
		defer s.sim.SetLatency(0, 0)
		v := callView(t, alice, "execute_code_to_dag", dag)
		waitUntil(t, 10*time.Second, func() bool {
			return callView(t, alice, "get_job", map[string]any{"job_id": v.JobID}).State == "active"
		})
		c := callView(t, alice, "cancel_job", map[string]any{"job_id": v.JobID})
		got := c
		waitUntil(t, 10*time.Second, func() bool {
			got = callView(t, alice, "get_job", map[string]any{"job_id": v.JobID})
			return got.State != "active"
		})
		if got.State != "cancelled" {
			t.Errorf("cancel answered %s, then the job is %s (error %+v); want cancelled, not retry", c.State, got.State, got.Error)
		}
	})
	t.Run("completed", func(t *testing.T) {
		v := callView(t, alice, "execute_code_to_dag", withArgs(dag, map[string]any{"wait_seconds": 20}))
		c := callView(t, alice, "cancel_job", map[string]any{"job_id": v.JobID})
		if v.State != "completed" || c.State != "completed" {
			t.Errorf("states %s → %s", v.State, c.State)
		}
	})
	t.Run("batch", func(t *testing.T) {
		sub := callView(t, alice, "submit_batch_task", withArgs(submitArgs, map[string]any{"wait_seconds": 0}))
		waitUntil(t, 10*time.Second, func() bool {
			return callView(t, alice, "get_job", map[string]any{"job_id": sub.JobID}).Batch != nil
		})
		// The job's next check runs at once and cancels the platform task.
		c := callView(t, alice, "cancel_job", map[string]any{"job_id": sub.JobID})
		if c.State != "cancelled" || c.Batch == nil || c.Batch.State != "CANCELLED" {
			t.Errorf("cancel_job answered %s %+v", c.State, c.Batch)
		}
		if st := s.sim.Stats(); st.Calls["batch_cancel"] != 1 || st.BatchRunning != 0 {
			t.Errorf("batch_cancel calls = %d, running = %d", st.Calls["batch_cancel"], st.BatchRunning)
		}
	})
}

func TestBadInputEnqueuesNothing(t *testing.T) {
	s := newStack(t, simulator.Config{})
	alice := s.as(t, "alice")
	big := strings.Repeat("x", jobs.MaxCodeBytes+1)
	tests := []struct {
		tool  string
		args  map[string]any
		field string
	}{
		{"run_big_query", map[string]any{}, "sql"},
		{"run_big_query", map[string]any{"sql": big}, "sql"},
		{"run_big_query", map[string]any{"sql": "SELECT 1", "max_rows": 0}, "max_rows"},
		{"run_big_query", map[string]any{"sql": "SELECT 1", "max_rows": "ten"}, "max_rows"},
		{"run_big_query", map[string]any{"sql": "SELECT 1", "wait_seconds": 90}, "wait_seconds"},
		{"execute_code_to_dag", map[string]any{"code": "x", "language": "cobol"}, "language"},
		{"execute_code_to_dag", map[string]any{"code": big, "language": "python"}, "code"},
		{"execute_code_to_dag", map[string]any{"code": 42, "language": "python"}, "code"},
		{"submit_batch_task", withArgs(submitArgs, map[string]any{"output": "here"}), "output"},
		{"submit_batch_task", withArgs(submitArgs, map[string]any{"output": map[string]any{"format": "GeoTIFF"}}), "output.path"},
		{"submit_batch_task", withArgs(submitArgs, map[string]any{"name": ""}), "name"},
		{"submit_batch_task", withArgs(submitArgs, map[string]any{"idempotency_key": strings.Repeat("k", 129)}), "idempotency_key"},
		{"submit_batch_task", withArgs(submitArgs, map[string]any{"auth_token": strings.Repeat("t", 5000)}), "auth_token"},
		{"query_task_status", map[string]any{"task_id": ""}, "task_id"},
		{"query_task_status", map[string]any{"task_id": "bt 1; DROP"}, "task_id"},
		{"query_task_status", map[string]any{"task_id": "bt-1", "max_age_seconds": -1}, "max_age_seconds"},
		{"get_job", map[string]any{}, "job_id"},
		{"get_job", map[string]any{"job_id": "x", "wait_seconds": 61}, "wait_seconds"},
		{"list_jobs", map[string]any{"state": "sleeping"}, "state"},
		{"list_jobs", map[string]any{"limit": 1000}, "limit"},
		{"cancel_job", map[string]any{}, "job_id"},
	}
	for _, tt := range tests {
		t.Run(tt.tool+"/"+tt.field, func(t *testing.T) {
			text, isErr := tool(t, alice, tt.tool, tt.args)
			if !isErr || !strings.Contains(text, tt.field) {
				t.Errorf("answer %q; want a tool error naming %s", text, tt.field)
			}
		})
	}
	if keys := s.rdb.Keys(t.Context(), "asynq:{*}:t:*").Val(); len(keys) != 0 {
		t.Errorf("bad input enqueued %d tasks: %v", len(keys), keys)
	}
}

func TestProgressNotifications(t *testing.T) {
	s := newStack(t, simulator.Config{Latency: 2500 * time.Millisecond})
	alice := s.as(t, "alice")
	var mu sync.Mutex
	var got []mcpgo.JSONRPCNotification
	alice.OnNotification(func(n mcpgo.JSONRPCNotification) {
		if n.Method == "notifications/progress" {
			mu.Lock()
			got = append(got, n)
			mu.Unlock()
		}
	})
	req := mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: "execute_code_to_dag",
		Arguments: map[string]any{"code": "Image('dem_30m')", "language": "javascript"},
		Meta:      &mcpgo.Meta{ProgressToken: "p-1"}}}
	res, err := alice.CallTool(t.Context(), req)
	if err != nil || res.IsError {
		t.Fatalf("%v %+v", err, res)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 {
		t.Fatal("no progress notification during a 2.5s job")
	}
	if fmt.Sprint(got[0].Params.AdditionalFields["progressToken"]) != "p-1" {
		t.Errorf("notification = %+v", got[0].Params.AdditionalFields)
	}
}
