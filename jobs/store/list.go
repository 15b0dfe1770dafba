package store

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/jobs"
)

// listScan bounds how many of an owner's newest jobs a filtered list reads.
const listScan = 1000

func ownerKey(owner string) string { return "mcpjobs:owner:" + owner + ":jobs" }

// trimEvery: one enqueue in trimEvery drops the old entries of its owner's
// index (an index holds at most a few stale entries more; List skips
// entries whose job is gone). reassertEvery: how often a client re-adds a
// queue to asynq's queue set while it enqueues into it.
const (
	trimEvery     = 16
	reassertEvery = time.Second
)

// index records a job in its owner's list (keeping the first time it was
// recorded, for repeats of one idempotency key), now and then drops entries
// older than the retention of any job, and re-asserts the job's queue in
// asynq's queue set, which asynq writes only once per process (see
// registerQueues): after Redis lost its data, within reassertEvery of the
// next enqueue. Both are paced so that an enqueue usually costs one
// command here, not three.
func (c *Client) index(ctx context.Context, owner, id string, at time.Time) error {
	key := ownerKey(owner)
	pipe := c.rdb.Pipeline()
	pipe.ZAddNX(ctx, key, redis.Z{Score: float64(at.UnixMilli()), Member: id})
	if spec, ok := jobs.SpecForID(id); ok && c.reassertDue(spec.Queue, at) {
		pipe.SAdd(ctx, asynqQueuesKey, spec.Queue)
	}
	if c.indexed.Add(1)%trimEvery == 1 {
		horizon := at.Add(-c.opts.Retention - batchTTL).UnixMilli()
		pipe.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(horizon, 10))
	}
	_, err := pipe.Exec(ctx)
	return err
}

// reassertDue reports whether queue q is due to be re-added to asynq's
// queue set, and if so notes that it is being done at now.
func (c *Client) reassertDue(q string, now time.Time) bool {
	v, _ := c.asserted.LoadOrStore(q, new(atomic.Int64))
	last := v.(*atomic.Int64)
	prev := last.Load()
	if prev != 0 && now.UnixNano()-prev < int64(reassertEvery) {
		return false
	}
	return last.CompareAndSwap(prev, now.UnixNano())
}

// List returns owner's jobs, newest first, optionally only those in state,
// at most limit (default 20, at most 100).
func (c *Client) List(ctx context.Context, owner string, state jobs.State, limit int) ([]*jobs.View, error) {
	if state != "" {
		ok := false
		for _, s := range jobs.ValidStates {
			ok = ok || s == state
		}
		if !ok {
			return nil, jobs.FieldErrorf("state", "must be one of pending, scheduled, active, retry, completed, failed, cancelled; got %q", jobs.Truncate(string(state), 20))
		}
	}
	switch {
	case limit == 0:
		limit = jobs.DefaultListLimit
	case limit < 0 || limit > jobs.MaxListLimit:
		return nil, jobs.FieldErrorf("limit", "must be between 1 and %d, got %d", jobs.MaxListLimit, limit)
	}
	// A page costs a constant number of round trips: the index, then one
	// pipeline per chunk of IDs (one chunk without a state filter; a
	// filtered list reads at most listScan IDs, MaxListLimit at a time).
	scan, chunk := int64(limit), limit
	if state != "" {
		scan, chunk = listScan, jobs.MaxListLimit
	}
	ids, err := c.rdb.ZRevRange(ctx, ownerKey(owner), 0, scan-1).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
	}
	out := []*jobs.View{}
	var gone []string
	for start := 0; start < len(ids) && len(out) < limit; start += chunk {
		views, g, err := c.views(ctx, owner, ids[start:min(start+chunk, len(ids))])
		if err != nil {
			return nil, err
		}
		gone = append(gone, g...)
		for _, v := range views {
			if (state == "" || v.State == state) && len(out) < limit {
				out = append(out, v)
			}
		}
	}
	if len(gone) > 0 { // expired: drop them from the index
		_ = c.rdb.ZRem(ctx, ownerKey(owner), toAny(gone)...).Err()
	}
	return out, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
