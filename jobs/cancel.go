package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func cancelKey(jobID string) string { return "mcpjobs:cancelled:" + jobID }

// IsCancelled reports whether a job's owner cancelled it. A worker whose
// job context ends checks it, so that a cancelled job is failed as
// cancelled instead of retried.
func IsCancelled(ctx context.Context, rdb redis.UniversalClient, jobID string) (bool, error) {
	n, err := rdb.Exists(ctx, cancelKey(jobID)).Result()
	return n == 1, err
}

func (c *Client) isCancelled(ctx context.Context, jobID string) (bool, error) {
	return IsCancelled(ctx, c.rdb, jobID)
}

// Cancel cancels a job of owner's: a pending, scheduled or retrying job is
// archived as cancelled; an active one is stopped; a batch job also cancels
// its platform task. A job that has ended is answered as it is.
func (c *Client) Cancel(ctx context.Context, owner, id string) (*View, error) {
	v, err := c.Get(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	spec, _ := specForID(id)
	if !v.State.Final() {
		if err := c.rdb.Set(ctx, cancelKey(id), owner, c.opts.Retention+spec.Timeout).Err(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if err := c.stop(spec.Queue, id, v.State); err != nil {
			return nil, err
		}
	}
	// A batch job also cancels its platform task, unless that has ended.
	if v.Batch != nil && v.Batch.TaskID != "" && !v.Batch.Final && (v.Type == TypeBatchSubmit || v.Type == TypeBatchPoll) {
		if err := c.CancelBatch(ctx, owner, v.Batch.TaskID); err != nil {
			return nil, err
		}
		if v.Type == TypeBatchSubmit {
			if err := c.cancelOwned(ctx, PollJobID(v.Batch.TaskID)); err != nil {
				return nil, err
			}
		}
	}
	return c.settle(ctx, owner, id)
}

// cancelOwned cancels a job without an ownership check (a job this package
// started on the owner's behalf).
func (c *Client) cancelOwned(ctx context.Context, id string) error {
	spec, ok := specForID(id)
	if !ok {
		return nil
	}
	info, err := c.inspector.GetTaskInfo(spec.Queue, id)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	v := viewOf(info)
	if v.State.Final() {
		return nil
	}
	if err := c.rdb.Set(ctx, cancelKey(id), v.Owner, c.opts.Retention+spec.Timeout).Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return c.stop(spec.Queue, id, v.State)
}

// stop archives a waiting job or cancels a running one.
func (c *Client) stop(queue, id string, state State) error {
	var err error
	if state == StateActive {
		if err = c.inspector.CancelProcessing(id); err == nil {
			c.archiveAfterCancel(queue, id)
		}
	} else {
		err = c.inspector.ArchiveTask(queue, id)
		if errors.Is(err, asynq.ErrTaskNotFound) {
			return nil
		}
		// It may have started meanwhile: stop it where it runs.
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			err = c.inspector.CancelProcessing(id)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// archiveAfterCancel archives a job whose run was just cancelled: asynq
// ends a cancelled run as a failure to retry, without waiting for the
// handler. Should this miss (the worker is slow to notice), the worker
// fails the job as cancelled when it next starts.
func (c *Client) archiveAfterCancel(queue, id string) {
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		info, err := c.inspector.GetTaskInfo(queue, id)
		if err != nil {
			return
		}
		switch info.State {
		case asynq.TaskStateActive:
			time.Sleep(10 * time.Millisecond)
			continue
		case asynq.TaskStateRetry, asynq.TaskStatePending, asynq.TaskStateScheduled:
			_ = c.inspector.ArchiveTask(queue, id)
		}
		return
	}
}
