package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/jobs"
)

func cancelKey(jobID string) string { return "mcpjobs:cancelled:" + jobID }

// IsCancelled reports whether a job's owner cancelled it. A worker whose
// job context ends checks it, so that a cancelled job is failed as
// cancelled instead of retried (a shutdown ends the context too).
func IsCancelled(ctx context.Context, rdb redis.UniversalClient, jobID string) (bool, error) {
	n, err := rdb.Exists(ctx, cancelKey(jobID)).Result()
	return n == 1, err
}

func (c *Client) isCancelled(ctx context.Context, jobID string) (bool, error) {
	return IsCancelled(ctx, c.rdb, jobID)
}

// Cancel cancels a job of owner's: a pending, scheduled or retrying job is
// archived as cancelled; an active one is stopped. A batch job records the
// intent, which the worker carries out in whatever state the job is (see
// cancelBatchJob). A job that has ended is answered as it is.
func (c *Client) Cancel(ctx context.Context, owner, id string) (*jobs.View, error) {
	v, err := c.Get(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	if v.State.Final() {
		return v, nil
	}
	if v.Type == jobs.TypeBatchSubmit {
		return c.cancelBatchJob(ctx, owner, v)
	}
	spec, _ := jobs.SpecForID(id)
	if err := c.rdb.Set(ctx, cancelKey(id), owner, c.opts.Retention+spec.Timeout).Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
	}
	if err := c.stop(ctx, spec.Queue, id, v.State); err != nil {
		return nil, err
	}
	return c.settle(ctx, owner, id, time.Now().Add(500*time.Millisecond))
}

// cancelWait is how long cancel_job waits for the worker to end a batch job.
const cancelWait = 3 * time.Second

// cancelBatchJob records the intent to cancel a batch job. A job whose
// submit has not started ends cancelled at once. Otherwise the worker
// carries it out: after a submit in flight returns, or by re-sending a
// submit whose reply was lost (same Idempotency-Key) to learn the task ID,
// or at the next check of a followed task, which runs now. cancel_job then
// waits a little for the job to end.
func (c *Client) cancelBatchJob(ctx context.Context, owner string, v *jobs.View) (*jobs.View, error) {
	id := v.JobID
	failure, _ := json.Marshal(jobs.Failure{Class: "cancelled", Message: "cancelled by its owner before its submit started"})
	created := time.Now()
	if v.CreatedAt != nil {
		created = *v.CreatedAt
	}
	res, err := cancelScript.Run(ctx, c.rdb, []string{batchJobKey(id), credentialKey(id)},
		owner, formatTime(created), formatTime(time.Now()), failure, c.opts.Retention.Milliseconds()).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
	}
	rec, err := parseBatchJob(id, res)
	if err != nil {
		return nil, err
	}
	// Best effort: the worker would get there anyway, later.
	switch {
	case rec.State == jobs.StateCancelled && rec.TaskID == "":
		_ = c.inspector.DeleteTask(jobs.QueueBatch, id)
	case rec.State == jobs.StateActive && rec.TaskID == "":
		_ = c.inspector.RunTask(jobs.QueueBatch, id) // a submit waiting to retry
	case rec.State == jobs.StateActive:
		_ = c.inspector.RunTask(jobs.QueuePoll, jobs.PollTaskID(id, rec.Round))
	}
	c.opts.Logger.InfoContext(ctx, "batch job cancel requested", slog.String("job_id", id), slog.String("state", string(rec.State)))
	return c.Wait(ctx, owner, id, cancelWait, nil)
}

// stop archives a waiting job, whose caller token it deletes, or cancels
// a running one (whose worker deletes it).
func (c *Client) stop(ctx context.Context, queue, id string, state jobs.State) error {
	if state != jobs.StateActive {
		err := c.inspector.ArchiveTask(queue, id)
		switch {
		case err == nil:
			if derr := DropCredential(ctx, c.rdb, id); derr != nil {
				return fmt.Errorf("%w: %v", jobs.ErrUnavailable, derr)
			}
			return nil
		case errors.Is(err, asynq.ErrTaskNotFound):
			return nil
		case errors.Is(err, asynq.ErrQueueNotFound):
			return fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
		}
		// It may have started meanwhile: stop it where it runs.
	}
	if err := c.inspector.CancelProcessing(id); err != nil {
		return fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
	}
	c.archiveAfterCancel(queue, id)
	return nil
}

// cancelResend is how often archiveAfterCancel sends a cancellation again
// while the run goes on.
const cancelResend = 50 * time.Millisecond

// archiveAfterCancel follows a job whose run was just cancelled, for a few
// seconds. While it still runs, the cancellation is sent again: asynq's is
// a pub/sub message, lost when it reaches the worker before the worker has
// registered the run it just took (or while the worker reconnects), and
// workers do not check for cancellations when a job starts. When the run
// has ended as a failure to retry (asynq ends a cancelled run so, without
// waiting for the handler), the job is archived. Should the run outlast
// this, the worker fails it as cancelled when its context ends.
func (c *Client) archiveAfterCancel(queue, id string) {
	deadline := time.Now().Add(3 * time.Second)
	resend := time.Now().Add(cancelResend)
	for time.Now().Before(deadline) {
		info, err := c.inspector.GetTaskInfo(queue, id)
		if err != nil {
			return
		}
		switch info.State {
		case asynq.TaskStateActive:
			if time.Now().After(resend) {
				_ = c.inspector.CancelProcessing(id)
				resend = time.Now().Add(cancelResend)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		case asynq.TaskStateRetry, asynq.TaskStatePending, asynq.TaskStateScheduled:
			_ = c.inspector.ArchiveTask(queue, id)
		}
		return
	}
}
