package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/mcpjobs/mcpjobs/jobs"
)

// list_jobs reads a page of jobs in one pipelined round trip, instead of
// asynq's Inspector (two round trips per job). It reads asynq's task hashes
// as asynq v0.26 writes them (internal/rdb: a hash asynq:{queue}:t:<id>
// with the fields msg, a TaskMessage in protocol buffers, state and
// result; the retry and scheduled sorted sets scored by the next attempt's
// Unix time) and decodes the message with protowire. A test compares every
// view it builds with Get's, so an asynq upgrade that changes the layout
// fails there.

// taskReads are the pipelined reads of one job.
type taskReads struct {
	spec      jobs.Spec
	task      *redis.SliceCmd // HMGET msg state result
	retry     *redis.FloatCmd
	scheduled *redis.FloatCmd
	record    *redis.MapStringStringCmd // batch jobs
	cancelled *redis.IntCmd             // other jobs
}

// views reads owner's views of jobs ids in one round trip. It answers the
// views found, in the order of ids, and the IDs that are gone.
func (c *Client) views(ctx context.Context, owner string, ids []string) ([]*jobs.View, []string, error) {
	reads := make([]*taskReads, len(ids))
	pipe := c.rdb.Pipeline()
	for i, id := range ids {
		spec, ok := jobs.SpecForID(id)
		if !ok {
			continue
		}
		r := &taskReads{spec: spec}
		r.task = pipe.HMGet(ctx, taskKey(spec.Queue, id), "msg", "state", "result")
		r.retry = pipe.ZScore(ctx, "asynq:{"+spec.Queue+"}:retry", id)
		r.scheduled = pipe.ZScore(ctx, "asynq:{"+spec.Queue+"}:scheduled", id)
		if spec.Type == jobs.TypeBatchSubmit {
			r.record = pipe.HGetAll(ctx, batchJobKey(id))
		} else {
			r.cancelled = pipe.Exists(ctx, cancelKey(id))
		}
		reads[i] = r
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
		}
	}
	var out []*jobs.View
	var gone []string
	for i, id := range ids {
		r := reads[i]
		if r == nil {
			gone = append(gone, id)
			continue
		}
		var rec *BatchJob
		if r.record != nil {
			if rec, err = batchJobOf(id, r.record.Val()); err != nil {
				return nil, nil, err
			}
		}
		info, err := r.taskInfo(id)
		if err != nil {
			return nil, nil, fmt.Errorf("jobs: read job %s: %w", id, err)
		}
		cancelled := r.cancelled != nil && r.cancelled.Val() == 1
		v, err := assemble(owner, r.spec, rec, info, cancelled)
		if errors.Is(err, jobs.ErrNotFound) {
			gone = append(gone, id)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		out = append(out, v)
	}
	return out, gone, nil
}

// taskInfo builds the asynq.TaskInfo of a job from its pipelined reads, as
// asynq's Inspector.GetTaskInfo would; nil when the task is gone.
func (r *taskReads) taskInfo(id string) (*asynq.TaskInfo, error) {
	vals := r.task.Val()
	if len(vals) != 3 {
		return nil, nil
	}
	msg, _ := vals[0].(string)
	state, _ := vals[1].(string)
	if msg == "" {
		return nil, nil // gone (or a fragment Get drops)
	}
	info, err := decodeTaskMessage([]byte(msg))
	if err != nil {
		return nil, err
	}
	if res, ok := vals[2].(string); ok {
		info.Result = []byte(res)
	}
	switch state {
	case "active":
		info.State = asynq.TaskStateActive
	case "pending":
		info.State = asynq.TaskStatePending
	case "scheduled":
		info.State = asynq.TaskStateScheduled
		info.NextProcessAt = unixOrZero(int64(r.scheduled.Val()))
	case "retry":
		info.State = asynq.TaskStateRetry
		info.NextProcessAt = unixOrZero(int64(r.retry.Val()))
	case "archived":
		info.State = asynq.TaskStateArchived
	case "completed":
		info.State = asynq.TaskStateCompleted
	case "aggregating":
		info.State = asynq.TaskStateAggregating
	default:
		return nil, fmt.Errorf("unknown asynq task state %q", state)
	}
	return info, nil
}

// decodeTaskMessage decodes asynq's TaskMessage (asynq v0.26
// internal/proto/asynq.proto) into the fields of a TaskInfo.
func decodeTaskMessage(b []byte) (*asynq.TaskInfo, error) {
	info := &asynq.TaskInfo{Headers: map[string]string{}}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
			switch num {
			case 1:
				info.Type = string(v)
			case 2:
				info.Payload = v
			case 3:
				info.ID = string(v)
			case 4:
				info.Queue = string(v)
			case 7:
				info.LastErr = string(v)
			case 14:
				info.Group = string(v)
			case 15:
				k, val, err := decodeMapEntry(v)
				if err != nil {
					return nil, err
				}
				info.Headers[k] = val
			}
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
			switch num {
			case 5:
				info.MaxRetry = int(int32(v))
			case 6:
				info.Retried = int(int32(v))
			case 8:
				info.Timeout = time.Duration(int64(v)) * time.Second
			case 9:
				info.Deadline = unixOrZero(int64(v))
			case 11:
				info.LastFailedAt = unixOrZero(int64(v))
			case 12:
				info.Retention = time.Duration(int64(v)) * time.Second
			case 13:
				info.CompletedAt = unixOrZero(int64(v))
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return info, nil
}

// decodeMapEntry decodes one map<string, string> entry.
func decodeMapEntry(b []byte) (key, value string, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "", protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return "", "", protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", "", protowire.ParseError(n)
		}
		b = b[n:]
		switch num {
		case 1:
			key = string(v)
		case 2:
			value = string(v)
		}
	}
	return key, value, nil
}

func unixOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}
