package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/internal/testwait"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/worker"
)

// batchStack is a worker with fast batch checks (50–200 ms) against the
// simulator on a real Redis.
func batchStack(t *testing.T, simCfg simulator.Config) *stack {
	t.Helper()
	return setupTuned(t, simCfg, func(c *stackConfig) {
		c.Intranet.Timeout = 5 * time.Second
		c.Worker.BatchPolling = worker.BatchPolling{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}
		c.Store.RecheckInterval = 100 * time.Millisecond
	})
}

var batchPayload = jobs.BatchSubmitPayload{Name: "aspect", Code: "run()", Output: jobs.BatchOutput{Format: "GeoTIFF", Path: "/out/a.tif"}}

// get reads alice's job, failing the test on an error.
func (s *stack) get(t *testing.T, id string) *jobs.View {
	t.Helper()
	v, err := s.jobs.Get(t.Context(), "alice", id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return v
}

// retrying counts the tasks in asynq's retry sets of the batch queues.
func retrying(t *testing.T, s *stack) int {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	n := 0
	for _, q := range []string{jobs.QueueBatch, jobs.QueuePoll} {
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			continue // the queue does not exist yet
		}
		n += info.Retry + info.Archived
	}
	return n
}

// TestBatchJobFollowsItsBatch: the job is active while the batch runs, with
// its task, and ends as the batch ended; no check sits in a retry set.
func TestBatchJobFollowsItsBatch(t *testing.T) {
	s := batchStack(t, simulator.Config{BatchDuration: 1500 * time.Millisecond})
	for _, tt := range []struct {
		name  string
		state jobs.State
		batch string
	}{{"aspect", jobs.StateCompleted, "SUCCEEDED"}, {"will-fail", jobs.StateFailed, "FAILED"}} {
		t.Run(tt.name, func(t *testing.T) {
			p := batchPayload
			p.Name = tt.name
			v, err := s.jobs.Enqueue(t.Context(), "alice", p)
			if err != nil {
				t.Fatal(err)
			}
			sawRunning := false
			testwait.Until(t, 10*time.Second, "the job ends", func() bool {
				got := s.get(t, v.JobID)
				if got.State == jobs.StateActive && got.Batch != nil && got.Batch.State == "RUNNING" {
					sawRunning = true
				}
				if n := retrying(t, s); n != 0 {
					t.Fatalf("%d batch tasks in asynq's retry or archived sets while the batch runs normally", n)
				}
				return got.State.Final()
			})
			got, err := s.jobs.Wait(t.Context(), "alice", v.JobID, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !sawRunning || got.State != tt.state || got.Batch == nil || got.Batch.State != tt.batch {
				t.Fatalf("saw running %v; final view %+v batch %+v", sawRunning, got, got.Batch)
			}
			if tt.state == jobs.StateCompleted && !strings.Contains(string(got.Result.Data), "output_uri") {
				t.Errorf("result = %s", got.Result.Data)
			}
			if tt.state == jobs.StateFailed && (got.Error == nil || !strings.Contains(got.Error.Message, "simulated failure")) {
				t.Errorf("error = %+v", got.Error)
			}
		})
	}
	if st := s.sim.Stats(); st.BatchSubmissions != 2 || st.BatchRunning != 0 {
		t.Errorf("sim stats: %+v", st)
	}
}

// TestWaitLastsUntilTheBatchEnds: Wait answers the job's end, not the
// submit's.
func TestWaitLastsUntilTheBatchEnds(t *testing.T) {
	s := batchStack(t, simulator.Config{BatchDuration: time.Second})
	v, err := s.jobs.Enqueue(t.Context(), "alice", batchPayload)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.jobs.Wait(t.Context(), "alice", v.JobID, 20*time.Second, nil)
	if err != nil || got.State != jobs.StateCompleted || got.Batch.State != "SUCCEEDED" {
		t.Fatalf("wait: %+v %v", got, err)
	}
}

// TestPollingSurvivesFaultsAndRedisRestart: a batch job follows its batch
// to the end through gateway errors and a Redis restart, with one submit.
func TestPollingSurvivesFaultsAndRedisRestart(t *testing.T) {
	s := batchStack(t, simulator.Config{BatchDuration: 2 * time.Second})
	v, err := s.jobs.Enqueue(t.Context(), "alice", batchPayload)
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "the job has its task", func() bool { return s.get(t, v.JobID).Batch != nil })
	if err := s.sim.SetFaults(simulator.Faults{HTTP5xx: 1}); err != nil {
		t.Fatal(err)
	}
	statusCalls := s.sim.Stats().Calls["batch_status"]
	testwait.Until(t, 10*time.Second, "two checks meet a gateway error", func() bool {
		return s.sim.Stats().Calls["batch_status"] >= statusCalls+2
	})
	if got := s.get(t, v.JobID); got.State != jobs.StateActive || retrying(t, s) != 0 {
		t.Fatalf("a failed check is not a failure: %s, %d in retry", got.State, retrying(t, s))
	}
	if err := s.sim.SetFaults(simulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	s.redis.Stop(t)
	s.redis.Restart(t)
	var got *jobs.View
	testwait.Until(t, 30*time.Second, "the job ends after the restart", func() bool {
		got, err = s.jobs.Get(t.Context(), "alice", v.JobID)
		return err == nil && got.State.Final()
	})
	if got.State != jobs.StateCompleted || got.Batch == nil || got.Batch.State != "SUCCEEDED" {
		t.Fatalf("job: %+v batch %+v", got, got.Batch)
	}
	if st := s.sim.Stats(); st.BatchSubmissions != 1 || st.FaultsInjected == 0 {
		t.Errorf("sim stats: %+v", st)
	}
}

// TestCancelBatchJobInEachState: cancel_job in every state of the job
// leaves no platform task running and none submitted twice.
func TestCancelBatchJobInEachState(t *testing.T) {
	insp := func(s *stack) *asynq.Inspector { return asynq.NewInspectorFromRedisClient(s.rdb) }
	t.Run("before the submit", func(t *testing.T) {
		s := batchStack(t, simulator.Config{BatchDuration: time.Minute})
		if err := insp(s).PauseQueue(jobs.QueueBatch); err != nil {
			t.Fatal(err)
		}
		tok := authenticate(t, s.simURL)
		v, err := s.jobs.Enqueue(t.Context(), "alice", batchPayload, store.WithCredential(tok))
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.jobs.Cancel(t.Context(), "alice", v.JobID)
		if err != nil || c.State != jobs.StateCancelled {
			t.Fatalf("cancel: %+v %v", c, err)
		}
		if err := insp(s).UnpauseQueue(jobs.QueueBatch); err != nil {
			t.Fatal(err)
		}
		assertNotInRedis(t, s.rdb, tok)
		if st := s.sim.Stats(); st.Calls["batch_submit"] != 0 {
			t.Errorf("a job cancelled before its submit submitted: %+v", st)
		}
	})
	t.Run("submit in flight", func(t *testing.T) {
		s := batchStack(t, simulator.Config{BatchDuration: time.Minute, Latency: 500 * time.Millisecond})
		v, err := s.jobs.Enqueue(t.Context(), "alice", batchPayload)
		if err != nil {
			t.Fatal(err)
		}
		testwait.Until(t, 10*time.Second, "the submit is sent", func() bool { return s.sim.Stats().Calls["batch_submit"] == 1 })
		if _, err := s.jobs.Cancel(t.Context(), "alice", v.JobID); err != nil {
			t.Fatal(err)
		}
		s.assertCancelled(t, v.JobID)
	})
	t.Run("after a lost reply", func(t *testing.T) {
		s := batchStack(t, simulator.Config{BatchDuration: time.Minute})
		if err := s.sim.SetFaults(simulator.Faults{LostReply: 1}); err != nil {
			t.Fatal(err)
		}
		v, err := s.jobs.Enqueue(t.Context(), "alice", batchPayload)
		if err != nil {
			t.Fatal(err)
		}
		testwait.Until(t, 10*time.Second, "the platform takes the submit", func() bool { return s.sim.Stats().BatchSubmissions == 1 })
		if err := s.sim.SetFaults(simulator.Faults{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.jobs.Cancel(t.Context(), "alice", v.JobID); err != nil {
			t.Fatal(err)
		}
		s.assertCancelled(t, v.JobID)
		if st := s.sim.Stats(); st.IdempotentReplays == 0 {
			t.Errorf("the task ID was not learned by a replay: %+v", st)
		}
	})
	t.Run("while the batch runs", func(t *testing.T) {
		s := batchStack(t, simulator.Config{BatchDuration: time.Minute})
		v, err := s.jobs.Enqueue(t.Context(), "alice", batchPayload)
		if err != nil {
			t.Fatal(err)
		}
		testwait.Until(t, 10*time.Second, "the batch runs", func() bool {
			b := s.get(t, v.JobID).Batch
			return b != nil && b.State == "RUNNING"
		})
		c, err := s.jobs.Cancel(t.Context(), "alice", v.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if c.State != jobs.StateCancelled {
			t.Errorf("cancel answered %s (a check runs at once)", c.State)
		}
		s.assertCancelled(t, v.JobID)
		if n := s.sim.Stats().Calls["batch_cancel"]; n != 1 {
			t.Errorf("batch_cancel calls = %d", n)
		}
	})
}

// assertCancelled waits for a cancelled job to end, then checks that it is
// cancelled, its batch too, and nothing runs or was submitted twice.
func (s *stack) assertCancelled(t *testing.T, id string) {
	t.Helper()
	v, err := s.jobs.Wait(t.Context(), "alice", id, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.State != jobs.StateCancelled || v.Batch == nil || v.Batch.State != "CANCELLED" || v.Error == nil || v.Error.Class != "cancelled" {
		t.Fatalf("after cancel: %+v batch %+v error %+v", v, v.Batch, v.Error)
	}
	if st := s.sim.Stats(); st.BatchRunning != 0 || st.BatchSubmissions != 1 {
		t.Errorf("sim stats: running %d submissions %d", st.BatchRunning, st.BatchSubmissions)
	}
}

// TestCancelsAtRandomMomentsUnderFaults: 100 batch jobs, two in three cancelled at random
// moments while the platform fails 10% of calls and loses 10% of replies:
// every job ends true to its batch, no task is left running, none was
// submitted twice.
func TestCancelsAtRandomMomentsUnderFaults(t *testing.T) {
	const n = 100
	s := batchStack(t, simulator.Config{BatchDuration: 2 * time.Second, Latency: 20 * time.Millisecond})
	if err := s.sim.SetFaults(simulator.Faults{HTTP5xx: 0.05, Busy: 0.05, LostReply: 0.1}); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		v, err := s.jobs.Enqueue(t.Context(), "alice", batchPayload)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = v.JobID
		if i%3 == 2 {
			continue // not cancelled: runs to its end
		}
		wg.Go(func() {
			time.Sleep(rand.N(2500 * time.Millisecond))
			if _, err := s.jobs.Cancel(context.Background(), "alice", v.JobID); err != nil {
				t.Errorf("cancel %s: %v", v.JobID, err)
			}
		})
	}
	wg.Wait()
	tasks := map[string]string{}
	for _, id := range ids {
		v, err := s.jobs.Wait(t.Context(), "alice", id, 30*time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !v.State.Final() {
			t.Fatalf("job %s still %s (batch %+v)", id, v.State, v.Batch)
		}
		if v.Batch == nil {
			if v.State != jobs.StateCancelled {
				t.Errorf("job %s ended %s without a batch task", id, v.State)
			}
			continue
		}
		if prev, dup := tasks[v.Batch.TaskID]; dup {
			t.Errorf("jobs %s and %s share task %s", prev, id, v.Batch.TaskID)
		}
		tasks[v.Batch.TaskID] = id
		st, _ := s.sim.BatchTaskState(v.Batch.TaskID)
		want := map[string]jobs.State{"SUCCEEDED": jobs.StateCompleted, "FAILED": jobs.StateFailed, "CANCELLED": jobs.StateCancelled}[st]
		if v.State != want || v.Batch.State != st {
			t.Errorf("job %s ended %s (batch says %s); the platform's task is %s", id, v.State, v.Batch.State, st)
		}
	}
	st := s.sim.Stats()
	if st.BatchRunning != 0 || st.BatchSubmissions != int64(len(tasks)) {
		t.Errorf("running %d, submissions %d for %d tasks: %s", st.BatchRunning, st.BatchSubmissions, len(tasks), fmt.Sprint(st))
	}
}

// TestCallerTokenOfABatchJob: the caller's token serves the submit and every
// check, and is gone from Redis when the job ends.
func TestCallerTokenOfABatchJob(t *testing.T) {
	s := batchStack(t, simulator.Config{BatchDuration: 500 * time.Millisecond})
	tok := authenticate(t, s.simURL)
	v, err := s.jobs.Enqueue(t.Context(), "alice", batchPayload, store.WithCredential(tok))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.jobs.Wait(t.Context(), "alice", v.JobID, 20*time.Second, nil)
	if err != nil || got.State != jobs.StateCompleted {
		t.Fatalf("%+v %v", got, err)
	}
	if n := s.sim.Stats().AuthCalls; n != 1 {
		t.Errorf("auth_calls = %d: the worker fetched a service token for a job with its caller's", n)
	}
	assertNotInRedis(t, s.rdb, tok)
	var res struct {
		TaskID string `json:"task_id"`
	}
	_ = json.Unmarshal(got.Result.Data, &res)
	if res.TaskID != got.Batch.TaskID {
		t.Errorf("result %s, batch %+v", got.Result.Data, got.Batch)
	}
}
