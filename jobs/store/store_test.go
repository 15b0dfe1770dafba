package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/internal/testwait"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
)

func setup(t *testing.T) (*redis.Client, *store.Client) {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	jc := store.NewClient(rdb, store.Options{RecheckInterval: 100 * time.Millisecond})
	t.Cleanup(func() { _ = jc.Close() })
	return rdb, jc
}

var aspect = jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{116.0, 39.8, 116.1, 39.9}}

func TestEnqueueGetAndOwnership(t *testing.T) {
	_, jc := setup(t)
	ctx := t.Context()
	v, err := jc.Enqueue(ctx, "alice", aspect)
	if err != nil {
		t.Fatal(err)
	}
	got, err := jc.Get(ctx, "alice", v.JobID)
	if err != nil || got.State != jobs.StatePending || got.CreatedAt == nil || got.Type != jobs.TypeAspect {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	for _, tt := range []struct{ owner, id string }{
		{"bob", v.JobID},
		{"alice", "aspect-00000000-0000-0000-0000-000000000000"},
		{"alice", "no-such-kind"},
		{"alice", ""},
	} {
		if _, err := jc.Get(ctx, tt.owner, tt.id); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("Get(%q, %q) error = %v, want ErrNotFound", tt.owner, tt.id, err)
		}
	}
	if _, err := jc.Enqueue(ctx, "alice", jobs.AspectPayload{}); !errors.Is(err, jobs.ErrInvalid) {
		t.Errorf("invalid payload enqueued: %v", err)
	}
}

// serve runs a bare asynq server whose handler completes every job after
// delay, announcing (or not) that it ended.
func serve(t *testing.T, rdb *redis.Client, delay time.Duration, announce bool) {
	t.Helper()
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 4, Queues: jobs.Queues, TaskCheckInterval: 10 * time.Millisecond,
		LogLevel: asynq.FatalLevel,
	})
	err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		time.Sleep(delay)
		if _, err := task.ResultWriter().Write(jobs.EncodeResult(jobs.Result{Data: json.RawMessage(`{"ok":true}`), Attempts: 1})); err != nil {
			return err
		}
		if announce {
			return store.Announce(ctx, rdb, task.ResultWriter().TaskID())
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
}

func TestWaitWakesOnAnnouncement(t *testing.T) {
	rdb, _ := setup(t)
	// A long recheck interval: only the announcement can wake the waiter in time.
	jc := store.NewClient(rdb, store.Options{RecheckInterval: time.Minute})
	t.Cleanup(func() { _ = jc.Close() })
	serve(t, rdb, 200*time.Millisecond, true)
	ctx := t.Context()
	v, err := jc.Enqueue(ctx, "alice", aspect)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := jc.Wait(ctx, "alice", v.JobID, 20*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != jobs.StateCompleted || string(got.Result.Data) != `{"ok":true}` {
		t.Fatalf("view = %+v", got)
	}
	// Without the announcement the waiter would sleep through its 20s
	// (the recheck is a minute away) and return the job still active.
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("waited %v for a 200ms job; only the 20s timeout ended the wait", d)
	}
}

func TestWaitFallsBackToRereading(t *testing.T) {
	rdb, jc := setup(t)
	serve(t, rdb, 50*time.Millisecond, false) // never announces
	ctx := t.Context()
	v, err := jc.Enqueue(ctx, "alice", aspect)
	if err != nil {
		t.Fatal(err)
	}
	got, err := jc.Wait(ctx, "alice", v.JobID, 10*time.Second, nil)
	if err != nil || got.State != jobs.StateCompleted {
		t.Fatalf("Wait = %+v, %v", got, err)
	}
}

func TestWaitTimesOutWithCurrentState(t *testing.T) {
	_, jc := setup(t)
	v, err := jc.Enqueue(t.Context(), "alice", aspect)
	if err != nil {
		t.Fatal(err)
	}
	// Ten rechecks (RecheckInterval 100ms) fit in the wait, so even a
	// starved waiter reports progress at least once.
	var progress int
	got, err := jc.Wait(t.Context(), "alice", v.JobID, time.Second, func(*jobs.View) { progress++ })
	if err != nil || got.State != jobs.StatePending {
		t.Fatalf("Wait = %+v, %v", got, err)
	}
	if progress == 0 {
		t.Error("no progress reported while waiting")
	}
	if _, err := jc.Wait(t.Context(), "bob", v.JobID, time.Second, nil); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("bob waited on alice's job: %v", err)
	}
}

func TestEnqueueWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	jc := store.NewClient(rdb, store.Options{})
	t.Cleanup(func() { _ = jc.Close() })
	srv.Stop(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := jc.Enqueue(ctx, "alice", aspect)
	if !errors.Is(err, jobs.ErrUnavailable) {
		t.Fatalf("error = %v, want ErrUnavailable", err)
	}
}

// TestWaitOutlastsASlowCompletion: a worker announces a job's end before
// asynq records it; on a loaded machine the gap can outlast any fixed poll.
// A waiting caller re-reads until the job leaves the active state, for as
// long as its wait lasts, rather than until its next recheck.
func TestWaitOutlastsASlowCompletion(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	jc := store.NewClient(rdb, store.Options{RecheckInterval: time.Hour}) // only the announcement wakes
	t.Cleanup(func() { _ = jc.Close() })
	ctx := t.Context()
	const gap = 800 * time.Millisecond
	v, err := jc.Enqueue(ctx, "alice", aspect)
	if err != nil {
		t.Fatal(err)
	}
	type waited struct {
		v   *jobs.View
		err error
	}
	done := make(chan waited, 1)
	start := time.Now()
	go func() {
		v, err := jc.Wait(ctx, "alice", v.JobID, 20*time.Second, nil)
		done <- waited{v, err}
	}()
	// The job runs once the waiter hears announcements.
	testwait.Until(t, 10*time.Second, "the waiter to subscribe", func() bool {
		return rdb.PubSubNumSub(ctx, store.EndedChannel).Val()[store.EndedChannel] > 0
	})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 1, Queues: jobs.Queues, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		if err := store.Announce(ctx, rdb, t.ResultWriter().TaskID()); err != nil {
			return err
		}
		time.Sleep(gap) // the work: asynq records the completion after it
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	w := <-done
	got, err := w.v, w.err
	if err != nil {
		t.Fatal(err)
	}
	if got.State != jobs.StateCompleted {
		t.Fatalf("after waiting %v the job is %s; want completed", time.Since(start).Round(time.Millisecond), got.State)
	}
}
