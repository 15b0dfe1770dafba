package worker_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/internal/testwait"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
)

// TestListReadsAPageAtOnce: list_jobs answers the same views as get_job,
// for jobs in every state, in a constant number of round trips per page.
func TestListReadsAPageAtOnce(t *testing.T) {
	s := batchStack(t, simulator.Config{BatchDuration: time.Minute})
	ctx := t.Context()
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	var ids []string
	enqueue := func(p jobs.Payload) string {
		t.Helper()
		v, err := s.jobs.Enqueue(ctx, "alice", p)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.JobID)
		return v.JobID
	}
	// Completed, failed, an active batch, a cancelled batch, a retrying
	// job (pending again once the queue is paused), then pending and
	// cancelled ones in a paused queue.
	done := enqueue(beijing)
	bad := enqueue(jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{100, 30, 102, 32}, ScaleM: 1})
	running := enqueue(batchPayload)
	stopped := enqueue(batchPayload)
	for _, id := range []string{done, bad} {
		if _, err := s.jobs.Wait(ctx, "alice", id, 10*time.Second, nil); err != nil {
			t.Fatal(err)
		}
	}
	testwait.Until(t, 10*time.Second, "both batches run", func() bool {
		return s.get(t, running).Batch != nil && s.get(t, stopped).Batch != nil
	})
	if _, err := s.jobs.Cancel(ctx, "alice", stopped); err != nil {
		t.Fatal(err)
	}
	if err := s.sim.SetFaults(simulator.Faults{HTTP5xx: 1}); err != nil {
		t.Fatal(err)
	}
	retrying := enqueue(beijing)
	testwait.Until(t, 10*time.Second, "a job retries", func() bool { return s.get(t, retrying).State == jobs.StateRetry })
	if err := insp.PauseQueue(jobs.QueueInteractive); err != nil {
		t.Fatal(err)
	}
	enqueue(beijing)
	cancelled := enqueue(beijing)
	if _, err := s.jobs.Cancel(ctx, "alice", cancelled); err != nil {
		t.Fatal(err)
	}
	for range 40 {
		enqueue(beijing)
	}

	// A client that counts its round trips, on the same Redis.
	rdb := s.redis.Client(t)
	hook := &redistest.RoundTrips{}
	rdb.AddHook(hook)
	jc := store.NewClient(rdb, store.Options{})
	t.Cleanup(func() { _ = jc.Close() })
	if _, err := jc.List(ctx, "alice", "", 1); err != nil { // connects
		t.Fatal(err)
	}
	hook.Reset()
	list, err := jc.List(ctx, "alice", "", 50)
	if err != nil {
		t.Fatal(err)
	}
	if n := hook.Count(); n > 2 {
		t.Errorf("a page of %d jobs took %d round trips; want 2", len(list), n)
	}
	if len(list) != len(ids) {
		t.Fatalf("listed %d jobs of %d", len(list), len(ids))
	}
	states := map[jobs.State]int{}
	for i, v := range list {
		want, err := s.jobs.Get(ctx, "alice", v.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && v.CreatedAt.Truncate(time.Millisecond).After(list[i-1].CreatedAt.Truncate(time.Millisecond)) {
			t.Errorf("list[%d] = %s is newer than the one before it", i, v.JobID)
		}
		// A job may move between the two reads (the retrying one).
		if v.State == want.State && !reflect.DeepEqual(v, want) {
			t.Errorf("list and get differ for %s:\n list %+v\n get  %+v", v.JobID, v, want)
		}
		states[v.State]++
	}
	for _, st := range []jobs.State{jobs.StateCompleted, jobs.StateFailed, jobs.StateActive, jobs.StateCancelled, jobs.StatePending} {
		if states[st] == 0 {
			t.Errorf("no %s job listed: %v", st, states)
		}
	}
	// Another identity lists none of them.
	if others, err := jc.List(ctx, "bob", "", 50); err != nil || len(others) != 0 {
		t.Errorf("bob lists %d jobs, %v", len(others), err)
	}
	if err := insp.UnpauseQueue(jobs.QueueInteractive); err != nil {
		t.Fatal(err)
	}
}
