package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
)

// TestChaosBatchCancels submits 100 batch jobs through MCP while 10% of
// platform calls fail at the gateway or as busy and 10% of replies are
// lost after the platform processed the call, and cancels two in three of
// them (cancel_job) at a random moment: before the submit, while it is in
// flight, after a lost reply, while the batch runs. When every job has
// ended: no platform task is left running, none was submitted twice, and
// every job's final state is true to its batch as the platform tells it.
func TestChaosBatchCancels(t *testing.T) {
	if os.Getenv("MCPJOBS_CHAOS") != "1" {
		t.Skip("reliability scenario: set MCPJOBS_CHAOS=1 (make chaos) to run it")
	}
	const n = 100
	c := startCluster(t, clusterConfig{workers: 2, simArgs: []string{
		"--fault-5xx", "0.05", "--fault-busy", "0.05", "--fault-lost-reply", "0.1"}})
	d := newDriver(t, c, "batch-cancels", 4)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	start := time.Now()
	type job struct {
		id        string
		cancelled bool // cancel_job was called
		view      *jobView
		problem   string
	}
	out := make([]job, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cl := d.clients[i%len(d.clients)]
			_, args := jobArgs(d.scenario, i, kindSubmit)
			v, err := d.view(ctx, cl, "submit_batch_task", args)
			if err != nil {
				out[i].problem = "enqueue: " + err.Error()
				return
			}
			d.enqueued.Add(1)
			out[i].id = v.JobID
			if i%3 != 2 {
				// A random moment: for one in two, within the first
				// 400 ms (before the submit or while it is in flight,
				// the platform taking 300 ms per call); for the other,
				// within the batch's life (3 s).
				moment := rand.N(4 * time.Second)
				if i%3 == 0 {
					moment = rand.N(400 * time.Millisecond)
				}
				sleep(ctx, moment)
				text, isErr, err := callTool(ctx, cl, "cancel_job", map[string]any{"job_id": v.JobID}, 30*time.Second)
				if err != nil || isErr {
					out[i].problem = fmt.Sprintf("cancel_job: %v %s", err, text)
					return
				}
				out[i].cancelled = true
			}
			if v, err = d.await(ctx, cl, v); err != nil {
				out[i].problem = "wait: " + err.Error()
				return
			}
			out[i].view = v
			d.ended.Add(1)
		})
		sleep(ctx, 100*time.Millisecond) // 100 jobs over 10 s
	}
	wg.Wait()
	took := time.Since(start)

	// Read the platform's truth without faults.
	c.faults(t, map[string]any{"http_5xx": 0, "busy": 0, "lost_reply": 0})
	token := c.platformToken(t)
	r := result{scenario: d.scenario, submitted: n, duration: took,
		unavailable: d.unavailable.Load(), protocol: d.protocol.Load()}
	tasks := map[string]string{} // task ID: job ID
	var cancelled, beforeTask, cancelledFirst, endedFirst int
	for i, j := range out {
		if j.problem != "" {
			t.Errorf("job %d (%s): %s", i, j.id, j.problem)
			continue
		}
		v := j.view
		if v.Attempts > 1 {
			r.retriedJob++
		}
		switch v.State {
		case "completed":
			r.completed++
		case "failed":
			r.failed++
		case "cancelled":
			cancelled++
		}
		if j.cancelled {
			if v.State == "cancelled" {
				cancelledFirst++
			} else {
				endedFirst++ // the batch ended before the cancel reached it
			}
		}
		if !j.cancelled && v.State != "completed" {
			t.Errorf("job %d (%s), not cancelled, ended %s (batch %+v); want completed", i, j.id, v.State, v.Batch)
		}
		if v.Batch == nil || v.Batch.TaskID == "" {
			beforeTask++
			if v.State != "cancelled" {
				t.Errorf("job %d (%s) ended %s without a platform task; only a job cancelled before its submit may", i, j.id, v.State)
			}
			continue
		}
		if prev, dup := tasks[v.Batch.TaskID]; dup {
			t.Errorf("jobs %s and %s share platform task %s", prev, j.id, v.Batch.TaskID)
		}
		tasks[v.Batch.TaskID] = j.id
		st := c.batchState(t, token, v.Batch.TaskID)
		want := map[string]string{simulator.StateSucceeded: "completed", simulator.StateFailed: "failed", simulator.StateCancelled: "cancelled"}[st]
		if v.State != want || v.Batch.State != st {
			t.Errorf("job %d (%s) ended %s with batch state %s; the platform's task %s is %s", i, j.id, v.State, v.Batch.State, v.Batch.TaskID, st)
		}
	}

	st := c.stats(t)
	r.authCalls, r.faults, r.replays = st.AuthCalls, st.FaultsInjected, st.IdempotentReplays
	for op, k := range st.Calls {
		if op != simulator.OpAuth {
			r.platformCalls += k
		}
	}
	r.duplicated = max(0, int(st.BatchSubmissions)-len(tasks))
	if st.BatchRunning != 0 {
		t.Errorf("batch_running = %d after every job ended; want 0 (a platform task left running)", st.BatchRunning)
	}
	if st.BatchSubmissions != int64(len(tasks)) {
		t.Errorf("batch_submissions = %d for %d distinct task IDs the jobs name; want one submission per task", st.BatchSubmissions, len(tasks))
	}
	if r.protocol != 0 {
		t.Errorf("%d MCP calls failed with a protocol or transport error; want 0", r.protocol)
	}
	// No job of theirs is left in the queues (a poll round, a cancel).
	var left map[string]string
	waitFor(ctx, t, 15*time.Second, "nothing left pending, active, scheduled or retrying", func() bool {
		left = c.unendedJobs(t)
		return len(left) == 0
	})
	known := map[string]bool{}
	for _, j := range out {
		known[j.id] = true
	}
	for id := range c.endedJobs(t) {
		if !known[id] && !strings.HasPrefix(id, "poll-") && !d.told(id) {
			r.phantoms = append(r.phantoms, id)
		}
	}
	if len(r.phantoms) > 0 {
		t.Errorf("%d jobs ran whose ID no MCP answer gave: %v", len(r.phantoms), r.phantoms)
	}
	r.note = fmt.Sprintf("%d cancel_job calls: %d jobs cancelled (%d before a platform task existed), %d batches ended first; batch_running 0, %d tasks for %d submissions",
		n-n/3, cancelled, beforeTask, endedFirst, len(tasks), st.BatchSubmissions)
	if cancelledFirst != cancelled {
		t.Errorf("%d jobs ended cancelled, %d of them had cancel_job called", cancelled, cancelledFirst)
	}
	report(t, r)
}

// platformToken fetches a token of the simulator's account. It ends the
// workers' token (one live token per account): call it once they are done.
func (c *cluster) platformToken(t *testing.T) string {
	t.Helper()
	var env struct {
		Code int `json:"code"`
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	c.platformPost(t, "/auth/token", "", map[string]string{"username": simulator.DefaultUsername, "password": simulator.DefaultPassword}, &env)
	if env.Code != 0 || env.Data.Token == "" {
		t.Fatalf("POST /auth/token: code %d", env.Code)
	}
	return env.Data.Token
}

// batchState answers the platform's state of a batch task.
func (c *cluster) batchState(t *testing.T, token, taskID string) string {
	t.Helper()
	var env struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			State string `json:"state"`
		} `json:"data"`
	}
	c.platformPost(t, "/api/batch/status", token, map[string]string{"task_id": taskID}, &env)
	if env.Code != 0 {
		t.Fatalf("batch status of %s: %d %s", taskID, env.Code, env.Message)
	}
	return env.Data.State
}

// platformPost posts body to the simulator's platform API and decodes the
// envelope into out.
func (c *cluster) platformPost(t *testing.T, route, token string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, c.simURL+route, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", route, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("POST %s: HTTP %d: %v", route, resp.StatusCode, err)
	}
}
