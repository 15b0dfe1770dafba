package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
)

// TestCallerTokenLivesNoLongerThanItsJob: a caller's token is stored only
// for a new job, expires by the job's deadline, is never replaced by a
// repeat of the same idempotency key, and is deleted when the job is
// cancelled before it ran.
func TestCallerTokenLivesNoLongerThanItsJob(t *testing.T) {
	rdb, jc := setup(t)
	ctx := t.Context()
	ttl := func(k string) time.Duration { return rdb.TTL(ctx, k).Val() }

	v, err := jc.Enqueue(ctx, "alice", aspect, store.WithCredential("tok-1"))
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl("mcpjobs:credential:" + v.JobID); d <= 0 || d > jobs.InteractiveDeadline {
		t.Errorf("token TTL %v; want at most the job's deadline %v", d, jobs.InteractiveDeadline)
	}

	// The same key with another token answers the job and keeps its token.
	batch := jobs.BatchSubmitPayload{Name: "n", Code: "c", Output: jobs.BatchOutput{Format: "CSV", Path: "/o.csv"}}
	b1, err := jc.Enqueue(ctx, "alice", batch, store.WithIdempotencyKey("k"), store.WithCredential("tok-a"))
	if err != nil {
		t.Fatal(err)
	}
	b2, err := jc.Enqueue(ctx, "alice", batch, store.WithIdempotencyKey("k"), store.WithCredential("tok-b"))
	if err != nil || b2.JobID != b1.JobID {
		t.Fatalf("repeat: %+v %v", b2, err)
	}
	if got := rdb.Get(ctx, "mcpjobs:credential:"+b1.JobID).Val(); got != "tok-a" {
		t.Errorf("the repeat replaced the job's token (now %q)", got)
	}
	if d := ttl("mcpjobs:credential:" + b1.JobID); d <= 0 || d > jobs.BatchDeadline {
		t.Errorf("batch token TTL %v", d)
	}

	// Cancelled before it ran: the token is gone, for either kind of job.
	for _, id := range []string{v.JobID, b1.JobID} {
		c, err := jc.Cancel(ctx, "alice", id)
		if err != nil || c.State != jobs.StateCancelled {
			t.Fatalf("cancel %s: %+v %v", id, c, err)
		}
		if n := rdb.Exists(ctx, "mcpjobs:credential:"+id).Val(); n != 0 {
			t.Errorf("job %s cancelled before it ran keeps its caller's token", id)
		}
	}
	// The cancelled batch job is not run, and stays cancelled.
	if _, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo(jobs.QueueBatch, b1.JobID); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("the cancelled submit is still queued: %v", err)
	}
	if got, err := jc.Get(ctx, "alice", b1.JobID); err != nil || got.State != jobs.StateCancelled || got.Error == nil {
		t.Errorf("cancelled batch job reads %+v %v", got, err)
	}
	if _, err := jc.Get(ctx, "bob", b1.JobID); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("bob reads alice's batch job: %v", err)
	}
}

// TestRepeatStoresNoToken: repeating an idempotency key with a token
// stores nothing for a job that was made without one.
func TestRepeatStoresNoToken(t *testing.T) {
	rdb, jc := setup(t)
	ctx := t.Context()
	batch := jobs.BatchSubmitPayload{Name: "n", Code: "c", Output: jobs.BatchOutput{Format: "CSV", Path: "/o.csv"}}
	v, err := jc.Enqueue(ctx, "alice", batch, store.WithIdempotencyKey("k"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jc.Enqueue(ctx, "alice", batch, store.WithIdempotencyKey("k"), store.WithCredential("tok")); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, "mcpjobs:credential:"+v.JobID).Val(); n != 0 {
		t.Error("a repeat of a job made without a token stored one")
	}
}
