package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// BatchPolling paces the jobs that follow batch tasks.
type BatchPolling struct {
	// Min and Max bound the wait between two polls; it grows with the
	// task's age (a tenth of it), with jitter. Defaults: 2s and 60s.
	Min, Max time.Duration
	// Deadline is how long a task is followed before its poll job gives
	// up. Default: 7 days.
	Deadline time.Duration
}

func (p BatchPolling) withDefaults() BatchPolling {
	if p.Min <= 0 {
		p.Min = 2 * time.Second
	}
	if p.Max <= 0 {
		p.Max = time.Minute
	}
	if p.Deadline <= 0 {
		p.Deadline = 7 * 24 * time.Hour
	}
	return p
}

// delay is the wait before the next poll of a task followed since since.
func (p BatchPolling) delay(since time.Time) time.Duration {
	d := min(max(time.Since(since)/10, p.Min), p.Max)
	return d*4/5 + jitter(d*2/5)
}

// pollWait is the outcome of a poll that found its task still running, or
// could not reach the platform: the job is polled again after delay, and
// this uses up none of its retries.
type pollWait struct {
	delay time.Duration
	state string
	cause error
}

func (e *pollWait) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s; last poll failed: %v", jobs.PollWaitPrefix, e.cause)
	}
	return fmt.Sprintf("%s (%s)", jobs.PollWaitPrefix, e.state)
}

// submitResult is the result of a submit job.
type submitResult struct {
	TaskID    string `json:"task_id"`
	PollJobID string `json:"poll_job_id,omitempty"`
	Cancelled bool   `json:"cancelled,omitempty"`
}

// handleSubmit submits a batch task exactly once: the platform call carries
// the job's ID as Idempotency-Key, and the task ID the platform answers is
// recorded before the job ends, so a retry never submits again.
func (w *Worker) handleSubmit(ctx context.Context, t *asynq.Task) error {
	var p jobs.BatchSubmitPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	id := t.ResultWriter().TaskID()
	start := time.Now()
	taskID, err := jobs.Submission(ctx, w.rdb, id)
	if err != nil {
		return fmt.Errorf("read submission: %w", err)
	}
	var took time.Duration
	if taskID == "" {
		resp, err := w.call(ctx, t, intranet.OpBatchSubmit, p, intranet.WithIdempotencyKey(id))
		if err != nil {
			return w.fail(ctx, t, err, start)
		}
		var d struct {
			TaskID string `json:"task_id"`
		}
		if json.Unmarshal(resp.Data, &d) != nil || jobs.CheckTaskID("task_id", d.TaskID) != nil {
			w.recordFailure(ctx, t, jobs.Failure{Class: "permanent", Message: "the platform accepted the batch but answered no valid task_id"}, start)
			return fmt.Errorf("submit answered no task_id: %w", asynq.SkipRetry)
		}
		taskID, took = d.TaskID, resp.Duration
		if err := jobs.RecordSubmission(ctx, w.rdb, id, taskID); err != nil {
			// The next attempt repeats the submit with the same key: the
			// platform answers the same task.
			return fmt.Errorf("record submission: %w", err)
		}
		w.log.InfoContext(ctx, "batch submitted", slog.String("job_id", id), slog.String("task_id", taskID))
	}
	res := submitResult{TaskID: taskID}
	cancelled, err := jobs.IsCancelled(ctx, w.rdb, id)
	if err != nil {
		return fmt.Errorf("read cancellation: %w", err)
	}
	owner := jobs.OwnerOf(t)
	if cancelled {
		res.Cancelled = true
		if err := w.jobs.CancelBatch(ctx, owner, taskID); err != nil {
			return err
		}
	} else if res.PollJobID, err = w.jobs.StartPolling(ctx, owner, taskID, id); err != nil {
		return err
	}
	data, _ := json.Marshal(res)
	return w.succeed(ctx, t, data, took)
}

// handlePoll polls a batch task once and records what it saw; until the
// task ends, the job is polled again later.
func (w *Worker) handlePoll(ctx context.Context, t *asynq.Task) error {
	var p jobs.BatchTaskPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	start := time.Now()
	if !p.Since.IsZero() && time.Since(p.Since) > w.cfg.BatchPolling.Deadline {
		w.recordFailure(ctx, t, jobs.Failure{Class: "deadline", Message: fmt.Sprintf(
			"stopped following batch task %s after %v without a final state; query_task_status still asks the platform", p.TaskID, w.cfg.BatchPolling.Deadline)}, start)
		return fmt.Errorf("poll deadline passed: %w", asynq.SkipRetry)
	}
	resp, err := w.call(ctx, t, intranet.OpBatchStatus, map[string]string{"task_id": p.TaskID})
	if err != nil {
		if retryable(err) && !errors.Is(err, context.Canceled) {
			return &pollWait{delay: w.cfg.BatchPolling.delay(p.Since), cause: err}
		}
		return w.fail(ctx, t, err, start)
	}
	rec, err := jobs.RecordBatchStatus(ctx, w.rdb, p.TaskID, t.ResultWriter().TaskID(), resp.Data, time.Now())
	if err != nil {
		return err
	}
	if rec.Final {
		return w.succeed(ctx, t, resp.Data, resp.Duration)
	}
	return &pollWait{delay: w.cfg.BatchPolling.delay(p.Since), state: rec.State}
}

// handleStatus asks the platform for a batch task's status once, for
// query_task_status, and records it.
func (w *Worker) handleStatus(ctx context.Context, t *asynq.Task) error {
	return w.batchCall(ctx, t, intranet.OpBatchStatus)
}

// handleCancel cancels a batch task on the platform and records its status.
func (w *Worker) handleCancel(ctx context.Context, t *asynq.Task) error {
	return w.batchCall(ctx, t, intranet.OpBatchCancel)
}

func (w *Worker) batchCall(ctx context.Context, t *asynq.Task, op intranet.Operation) error {
	var p jobs.BatchTaskPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	start := time.Now()
	resp, err := w.call(ctx, t, op, map[string]string{"task_id": p.TaskID})
	if err != nil {
		return w.fail(ctx, t, err, start)
	}
	if _, err := jobs.RecordBatchStatus(ctx, w.rdb, p.TaskID, t.ResultWriter().TaskID(), resp.Data, time.Now()); err != nil {
		return err
	}
	return w.succeed(ctx, t, resp.Data, resp.Duration)
}
