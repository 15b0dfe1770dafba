package store

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/jobs"
)

// TestIndexPaced: an owner's index drops entries older than any retention
// within trimEvery enqueues, and a queue missing from asynq's queue set (Redis
// lost its data) is back within reassertEvery, while most enqueues cost one
// command in the index's pipeline, not three.
func TestIndexPaced(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	c := NewClient(rdb, Options{})
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	key := ownerKey("alice")
	if err := rdb.ZAdd(ctx, key, redisZ(time.Now().Add(-30*24*time.Hour), "aspect-ancient")).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range trimEvery {
		if _, err := c.Enqueue(ctx, "alice", jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{116.0, 39.8, 116.1, 39.9}}); err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	if n, err := rdb.ZScore(ctx, key, "aspect-ancient").Result(); err == nil {
		t.Errorf("an entry older than any retention is still indexed (score %v) after %d enqueues", n, trimEvery)
	}
	if n := rdb.ZCard(ctx, key).Val(); n != trimEvery {
		t.Errorf("index holds %d entries, want %d", n, trimEvery)
	}

	// Redis lost its data: the queue set is back at the first enqueue
	// after reassertEvery.
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(reassertEvery + 10*time.Second)
	for !rdb.SIsMember(ctx, asynqQueuesKey, jobs.QueueInteractive).Val() {
		if time.Now().After(deadline) {
			t.Fatalf("the interactive queue is not back in asynq's queue set after %v of enqueues", reassertEvery+10*time.Second)
		}
		if _, err := c.Enqueue(ctx, "alice", jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{116.0, 39.8, 116.1, 39.9}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func redisZ(at time.Time, member string) redis.Z {
	return redis.Z{Score: float64(at.UnixMilli()), Member: member}
}

// TestEnqueueRoundTrips: an enqueue is two round trips, the owner's index
// first; an index that cannot be written refuses the enqueue (nothing is
// queued, the answer says so), as a Redis that is down does.
func TestEnqueueRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	hook := &redistest.RoundTrips{}
	rdb.AddHook(hook)
	c := NewClient(rdb, Options{})
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	p := jobs.DAGPayload{Code: "var a = 1", Language: "javascript"}
	if _, err := c.Enqueue(ctx, "alice", p); err != nil { // asynq's first enqueue adds its queue
		t.Fatal(err)
	}
	hook.Reset()
	const n = 20
	var ids []string
	for range n {
		v, err := c.Enqueue(ctx, "alice", p)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.JobID)
	}
	if got := hook.Count(); got != 2*n {
		t.Errorf("%d enqueues took %d round trips; want %d", n, got, 2*n)
	}
	for _, id := range ids {
		if err := rdb.ZScore(ctx, ownerKey("alice"), id).Err(); err != nil {
			t.Errorf("job %s is not in its owner's index: %v", id, err)
		}
	}

	// bob's index is not a sorted set: nothing is queued, and he is told.
	if err := rdb.Set(ctx, ownerKey("bob"), "not an index", 0).Err(); err != nil {
		t.Fatal(err)
	}
	before := rdb.LLen(ctx, "asynq:{"+jobs.QueueInteractive+"}:pending").Val()
	if _, err := c.Enqueue(ctx, "bob", p); !errors.Is(err, jobs.ErrUnavailable) {
		t.Fatalf("enqueue with an index that cannot be written: %v; want ErrUnavailable", err)
	}
	if after := rdb.LLen(ctx, "asynq:{"+jobs.QueueInteractive+"}:pending").Val(); after != before {
		t.Errorf("%d jobs queued by a refused enqueue", after-before)
	}
}
