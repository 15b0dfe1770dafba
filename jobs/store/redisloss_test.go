package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
)

// TestLostRedisDataHeals flushes Redis (as a failover to an empty replica
// or a restart without persistence would) under processes that have
// already enqueued: a job from before is reported not found, and new jobs
// can be read at once, without restarting anything. asynq registers a
// queue in its queue set only at a process's first enqueue, so without
// the repair every Get answered "not found" after the flush.
func TestLostRedisDataHeals(t *testing.T) {
	t.Run("this client enqueues after the flush", func(t *testing.T) {
		rdb, jc := setup(t)
		ctx := t.Context()
		before, err := jc.Enqueue(ctx, "alice", aspect)
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := jc.Get(ctx, "alice", before.JobID); !errors.Is(err, jobs.ErrNotFound) {
			t.Fatalf("Get of a job lost with the data = %v; want ErrNotFound", err)
		}
		after, err := jc.Enqueue(ctx, "alice", aspect)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := jc.Get(ctx, "alice", after.JobID); err != nil || v.State != jobs.StatePending {
			t.Fatalf("Get of a job enqueued after the flush = %+v, %v; want it pending", v, err)
		}
		list, err := jc.List(ctx, "alice", "", 0)
		if err != nil || len(list) != 1 || list[0].JobID != after.JobID {
			t.Fatalf("List after the flush = %v, %v; want only %s", list, err, after.JobID)
		}
	})
	t.Run("another process enqueues after the flush", func(t *testing.T) {
		// A worker enqueueing poll jobs: its asynq client registered the
		// queue before the flush and does not again.
		rdb, jc := setup(t)
		ctx := t.Context()
		other := asynq.NewClientFromRedisClient(rdb)
		task := func(id string) (*asynq.Task, []asynq.Option) {
			return asynq.NewTaskWithHeaders(jobs.TypeAspect, []byte(`{}`), map[string]string{"owner": "alice"}),
				[]asynq.Option{asynq.Queue(jobs.QueueInteractive), asynq.TaskID(id)}
		}
		tk, opts := task("aspect-00000000-0000-0000-0000-000000000001")
		if _, err := other.Enqueue(tk, opts...); err != nil {
			t.Fatal(err)
		}
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		id := "aspect-00000000-0000-0000-0000-000000000002"
		tk, opts = task(id)
		if _, err := other.Enqueue(tk, opts...); err != nil {
			t.Fatal(err)
		}
		if v, err := jc.Get(ctx, "alice", id); err != nil || v.State != jobs.StatePending {
			t.Fatalf("Get of a job another process enqueued after the flush = %+v, %v; want it pending", v, err)
		}
		// A worker finishing a job that was lost writes its result into
		// a task hash that no longer has a message.
		lost := "aspect-00000000-0000-0000-0000-000000000001"
		fragment := "asynq:{" + jobs.QueueInteractive + "}:t:" + lost
		if err := rdb.HSet(ctx, fragment, "result", "{}").Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := jc.Get(ctx, "alice", lost); !errors.Is(err, jobs.ErrNotFound) {
			t.Fatalf("Get of a lost job a worker wrote a result into = %v; want ErrNotFound", err)
		}
		if n, _ := rdb.Exists(ctx, fragment).Result(); n != 0 {
			t.Errorf("the remains of the lost job are still in Redis")
		}
		queues, err := rdb.SMembers(ctx, "asynq:queues").Result()
		if err != nil || len(queues) != len(jobs.Queues) {
			t.Fatalf("asynq:queues = %v, %v; want every queue of jobs.Queues registered again", queues, err)
		}
	})
}

// TestWaitReplicas enqueues with Options.WaitReplicas 1: with a replica
// linked, the job's ID is answered once the replica has it; with none, the
// answer is an *UncertainError that names the job, which is queued.
func TestWaitReplicas(t *testing.T) {
	primary := redistest.Start(t)
	rdb := primary.Client(t)
	ctx := t.Context()
	jc := store.NewClient(rdb, store.Options{WaitReplicas: 1, WaitTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { _ = jc.Close() })

	_, err := jc.Enqueue(ctx, "alice", aspect)
	var ue *jobs.UncertainError
	if !errors.As(err, &ue) || !errors.Is(err, jobs.ErrNotReplicated) || !strings.Contains(err.Error(), ue.JobID) {
		t.Fatalf("Enqueue without a replica = %v; want an UncertainError naming the job, wrapping ErrNotReplicated", err)
	}
	if v, err := jc.Get(ctx, "alice", ue.JobID); err != nil || v.State != jobs.StatePending {
		t.Fatalf("the job not acknowledged by a replica: Get = %+v, %v; want it queued on the primary", v, err)
	}

	// With a replica, the acknowledgement may take long on a loaded
	// machine: a generous timeout (without a replica, the wait above lasts
	// the whole timeout, hence a short one there).
	replica := redistest.StartReplica(t, primary)
	patient := store.NewClient(rdb, store.Options{WaitReplicas: 1, WaitTimeout: 15 * time.Second})
	t.Cleanup(func() { _ = patient.Close() })
	v, err := patient.Enqueue(ctx, "alice", aspect)
	if err != nil {
		t.Fatalf("Enqueue with a replica linked: %v", err)
	}
	// The replica has the job as soon as its ID is answered.
	rc := asynq.NewInspectorFromRedisClient(replica.Client(t))
	if _, err := rc.GetTaskInfo(jobs.QueueInteractive, v.JobID); err != nil {
		t.Fatalf("the replica does not have job %s after Enqueue answered: %v", v.JobID, err)
	}
}
