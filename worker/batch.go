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
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// A batch job has one life, its batch's (see jobs/store/record.go for its state
// machine). Its submit task begins it (pending → active), submits the batch
// once and records the platform's task ID; then a chain of scheduled
// checks, one task per round, follows the task until the platform reports
// an end, which ends the job completed, failed or cancelled. A check that
// finds the task still running, or cannot reach the platform, schedules
// the next round: waiting is not failing, so asynq's retry set only ever
// holds real failures. A cancel_job is an intent on the record that the
// worker carries out wherever the job is.

// BatchPolling paces the checks that follow batch tasks.
type BatchPolling struct {
	// Min and Max bound the wait between two checks; it grows with the
	// job's age (a tenth of it), with jitter. Defaults: 2s and 60s.
	Min, Max time.Duration
	// Deadline is how long a batch is followed before its job fails
	// (never more than jobs.BatchDeadline). Default: jobs.BatchDeadline.
	Deadline time.Duration
}

func (p BatchPolling) withDefaults() BatchPolling {
	if p.Min <= 0 {
		p.Min = 2 * time.Second
	}
	if p.Max <= 0 {
		p.Max = time.Minute
	}
	if p.Deadline <= 0 || p.Deadline > jobs.BatchDeadline {
		p.Deadline = jobs.BatchDeadline
	}
	return p
}

// delay is the wait before the next check of a job created at since.
func (p BatchPolling) delay(since time.Time) time.Duration {
	d := min(max(time.Since(since)/10, p.Min), p.Max)
	return d*4/5 + jitter(d*2/5)
}

// submitWindow bounds the retries of a submit: the platform remembers an
// Idempotency-Key for 24 hours, and a submit re-sent after that could start
// a second task.
const submitWindow = 12 * time.Hour

// errNoTaskID is a submit the platform accepted without a valid task_id.
var errNoTaskID = errors.New("the platform accepted the batch but answered no valid task_id")

// submitResult is the result of a submit task.
type submitResult struct {
	TaskID string `json:"task_id"`
}

// handleSubmit begins a batch job and submits its batch exactly once: the
// platform call carries the job's ID as Idempotency-Key, and the task ID
// the platform answers is recorded before anything else, so a retry (or a
// cancel after a lost reply) re-sends with the same key and learns the same
// task.
func (w *Worker) handleSubmit(ctx context.Context, t *asynq.Task) error {
	var p jobs.BatchSubmitPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	id := t.ResultWriter().TaskID()
	start := time.Now()
	credJob, _ := store.CredentialJob(t)
	created := jobs.CreatedAtOf(t)
	if created.IsZero() {
		created = start
	}
	deadline := created.Add(w.cfg.BatchPolling.Deadline)
	if d := jobs.DeadlineOf(t); !d.IsZero() && d.Before(deadline) {
		deadline = d
	}
	rec, err := store.BeginBatchJob(ctx, w.rdb, id, jobs.OwnerOf(t), created, deadline, credJob != "")
	if err != nil {
		return fmt.Errorf("begin batch job: %w", err)
	}
	if rec.State != jobs.StateActive {
		w.log.InfoContext(ctx, "batch job not submitted", slog.String("job_id", id), slog.String("state", string(rec.State)))
		w.announceJob(ctx, id)
		return nil
	}
	var took time.Duration
	if rec.TaskID == "" {
		taskID, d, err := w.submit(ctx, t, p, id)
		if err != nil {
			return w.failSubmit(ctx, t, rec, err, start)
		}
		took = d
		if rec, err = store.SetBatchTask(ctx, w.rdb, id, taskID); err != nil {
			// The next attempt re-sends with the same key: the platform
			// answers the same task.
			return fmt.Errorf("record batch task: %w", err)
		}
		w.log.InfoContext(ctx, "batch submitted", slog.String("job_id", id), slog.String("task_id", taskID))
	}
	if rec.State != jobs.StateActive {
		return nil
	}
	retried, _ := asynq.GetRetryCount(ctx)
	data, _ := json.Marshal(submitResult{TaskID: rec.TaskID})
	if _, err := t.ResultWriter().Write(jobs.EncodeResult(jobs.Result{Data: data, ExecutionTimeMS: took.Milliseconds(), Attempts: retried + 1})); err != nil {
		return fmt.Errorf("record result: %w", err)
	}
	if rec.CancelRequested {
		// Cancelled while the submit was in flight.
		return w.cancelBatch(ctx, t, rec, 0)
	}
	return w.next(ctx, rec, 0, w.cfg.BatchPolling.delay(rec.CreatedAt), false)
}

// submit sends the batch. When the call fails in a way that may hide a
// submission (a lost reply) and the owner has cancelled meanwhile, it
// re-sends at once with the same key, a few times, to learn the task ID to
// cancel; otherwise the submit task's retry does that later.
func (w *Worker) submit(ctx context.Context, t *asynq.Task, p jobs.BatchSubmitPayload, id string) (string, time.Duration, error) {
	for try := 0; ; try++ {
		resp, err := w.call(ctx, t, intranet.OpBatchSubmit, p, intranet.WithIdempotencyKey(id))
		if err == nil {
			var d struct {
				TaskID string `json:"task_id"`
			}
			if json.Unmarshal(resp.Data, &d) != nil || jobs.CheckTaskID("task_id", d.TaskID) != nil {
				return "", 0, errNoTaskID
			}
			return d.TaskID, resp.Duration, nil
		}
		if !retryable(err) || ctx.Err() != nil || try >= 4 {
			return "", 0, err
		}
		rec, rerr := store.LoadBatchJob(ctx, w.rdb, id)
		if rerr != nil || rec == nil || !rec.CancelRequested {
			return "", 0, err
		}
		select {
		case <-ctx.Done():
			return "", 0, err
		case <-time.After(backoff(try, 100*time.Millisecond, 2*time.Second)):
		}
	}
}

// failSubmit decides what a failed submit leads to: a retry of the submit
// task, or the end of the job (failed, with the error) when the error is
// permanent, the retries are used up or the submit window has passed.
func (w *Worker) failSubmit(ctx context.Context, t *asynq.Task, rec *store.BatchJob, err error, start time.Time) error {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return err // shutdown: asynq runs the submit again
	}
	deadline := rec.CreatedAt.Add(submitWindow)
	if !rec.Deadline.IsZero() && rec.Deadline.Before(deadline) {
		deadline = rec.Deadline
	}
	if !w.final(ctx, err, deadline) {
		return err
	}
	f := failureOf(err)
	if errors.Is(err, errNoTaskID) {
		f = jobs.Failure{Class: "permanent", Message: err.Error()}
	}
	w.endBatch(ctx, rec, store.Observation{End: jobs.StateFailed, Error: &f})
	retried, _ := asynq.GetRetryCount(ctx)
	if _, werr := t.ResultWriter().Write(jobs.EncodeFailure(f, retried+1, time.Since(start).Milliseconds())); werr != nil {
		w.log.WarnContext(ctx, "record failure", slog.String("job_id", rec.JobID), slog.Any("error", werr))
	}
	return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
}

// handlePoll is check round n of a batch job: it carries out a cancel
// intent, or asks the platform for the task's status, records it, and ends
// the job or schedules round n+1.
func (w *Worker) handlePoll(ctx context.Context, t *asynq.Task) error {
	var p jobs.PollPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	rec, err := store.LoadBatchJob(ctx, w.rdb, p.JobID)
	if err != nil {
		return fmt.Errorf("read batch job: %w", err)
	}
	if rec == nil || rec.State != jobs.StateActive || rec.TaskID == "" {
		return nil // ended (or expired): the chain stops
	}
	switch {
	case rec.Round != p.Round && rec.Round != p.Round+1:
		return nil // a stale round
	case rec.Round == p.Round+1:
		// This round ran before and reserved its successor: make sure it
		// is queued (the same task ID if it is).
		return w.jobs.SchedulePoll(ctx, rec, rec.Round, w.cfg.BatchPolling.delay(rec.CreatedAt))
	}
	if rec.CancelRequested {
		return w.cancelBatch(ctx, t, rec, p.Round)
	}
	if !rec.Deadline.IsZero() && time.Now().After(rec.Deadline) {
		w.endBatch(ctx, rec, store.Observation{End: jobs.StateFailed, Error: &jobs.Failure{Class: "deadline", Message: fmt.Sprintf(
			"stopped following batch task %s after %v without a final state (the job's deadline); query_task_status still asks the platform", rec.TaskID, rec.Deadline.Sub(rec.CreatedAt).Round(time.Second))}})
		return nil
	}
	resp, err := w.call(ctx, t, intranet.OpBatchStatus, map[string]string{"task_id": rec.TaskID})
	if err != nil {
		if ctx.Err() != nil {
			return err // shutdown: asynq runs this round again
		}
		if retryable(err) {
			w.log.InfoContext(ctx, "batch check failed; checking again later", slog.String("job_id", rec.JobID), slog.Any("error", err))
			return w.next(ctx, rec, p.Round, w.cfg.BatchPolling.delay(rec.CreatedAt), false)
		}
		f := failureOf(err)
		f.Message = "stopped following batch task " + rec.TaskID + ": " + f.Message
		w.endBatch(ctx, rec, store.Observation{End: jobs.StateFailed, Error: &f})
		return nil
	}
	return w.observe(ctx, rec, p.Round, resp.Data, false)
}

// cancelBatch carries out a cancel intent in round n: it cancels the
// platform task and ends the job as the platform answers (cancelled, or
// completed or failed when the batch had ended first). A cancel the
// platform could not take now is tried again next round.
func (w *Worker) cancelBatch(ctx context.Context, t *asynq.Task, rec *store.BatchJob, n int) error {
	resp, err := w.call(ctx, t, intranet.OpBatchCancel, map[string]string{"task_id": rec.TaskID})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		if retryable(err) {
			w.log.InfoContext(ctx, "batch cancel failed; trying again", slog.String("job_id", rec.JobID), slog.Any("error", err))
			return w.next(ctx, rec, n, w.cfg.BatchPolling.Min, true)
		}
		f := failureOf(err)
		f.Message = "could not cancel batch task " + rec.TaskID + ": " + f.Message
		w.endBatch(ctx, rec, store.Observation{End: jobs.StateFailed, Error: &f})
		return nil
	}
	w.log.InfoContext(ctx, "batch cancelled", slog.String("job_id", rec.JobID), slog.String("task_id", rec.TaskID))
	return w.observe(ctx, rec, n, resp.Data, true)
}

// observe records a status the platform answered in round n, and ends the
// job when the batch ended, or schedules round n+1.
func (w *Worker) observe(ctx context.Context, rec *store.BatchJob, n int, status json.RawMessage, cancelTried bool) error {
	var ps store.PlatformStatus
	if err := json.Unmarshal(status, &ps); err != nil {
		f := jobs.Failure{Class: "permanent", Message: fmt.Sprintf("the platform answered a status of batch task %s that is not an object", rec.TaskID)}
		w.endBatch(ctx, rec, store.Observation{End: jobs.StateFailed, Error: &f})
		return nil
	}
	end, failure := store.EndOf(ps)
	if end == jobs.StateCancelled && rec.CancelRequested {
		failure = &jobs.Failure{Class: "cancelled", Message: "cancelled by its owner"}
	}
	after, err := store.ObserveBatchJob(ctx, w.rdb, rec, store.Observation{Status: status, End: end, Error: failure}, w.retention())
	if err != nil {
		return fmt.Errorf("record batch status: %w", err)
	}
	if after.State.Final() {
		w.batchEnded(ctx, after)
		return nil
	}
	if after.State != jobs.StateActive {
		return nil
	}
	delay := w.cfg.BatchPolling.delay(rec.CreatedAt)
	if cancelTried {
		delay = w.cfg.BatchPolling.Min
	}
	return w.next(ctx, after, n, delay, cancelTried)
}

// next reserves round n+1 of a job's checks and schedules it after delay,
// or at once when a cancel intent arrived during round n.
func (w *Worker) next(ctx context.Context, rec *store.BatchJob, n int, delay time.Duration, cancelTried bool) error {
	after, err := store.AdvanceBatchJob(ctx, w.rdb, rec.JobID, n)
	if err != nil {
		return fmt.Errorf("schedule batch check: %w", err)
	}
	if after.State != jobs.StateActive || after.Round != n+1 {
		return nil
	}
	if after.CancelRequested && !cancelTried {
		delay = 0
	}
	if err := w.jobs.SchedulePoll(ctx, after, n+1, delay); err != nil {
		return fmt.Errorf("schedule batch check: %w", err)
	}
	return nil
}

// endBatch ends an active batch job without a new platform status.
func (w *Worker) endBatch(ctx context.Context, rec *store.BatchJob, obs store.Observation) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	after, err := store.ObserveBatchJob(ctx, w.rdb, rec, obs, w.retention())
	if err != nil {
		w.log.WarnContext(ctx, "end batch job", slog.String("job_id", rec.JobID), slog.Any("error", err))
		return
	}
	w.batchEnded(ctx, after)
}

// batchEnded logs and announces a batch job that has ended.
func (w *Worker) batchEnded(ctx context.Context, rec *store.BatchJob) {
	attrs := []any{slog.String("job_id", rec.JobID), slog.String("state", string(rec.State)), slog.String("task_id", rec.TaskID)}
	if rec.Error != nil {
		attrs = append(attrs, slog.String("error", rec.Error.Message))
	}
	w.log.InfoContext(ctx, "batch job ended", attrs...)
	w.metrics.observeBatchEnd(rec.State)
	w.announceJob(ctx, rec.JobID)
}

// announceJob tells callers waiting for a job that it changed.
func (w *Worker) announceJob(ctx context.Context, id string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := store.Announce(actx, w.rdb, id); err != nil {
		w.log.Warn("announce job", slog.String("job_id", id), slog.Any("error", err))
	}
}

func (w *Worker) retention() time.Duration {
	if w.cfg.Retention > 0 {
		return w.cfg.Retention
	}
	return 24 * time.Hour
}

// handleStatus asks the platform for a batch task's status once, for
// query_task_status.
func (w *Worker) handleStatus(ctx context.Context, t *asynq.Task) error {
	var p jobs.BatchTaskPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	return w.run(ctx, t, intranet.OpBatchStatus, map[string]string{"task_id": p.TaskID})
}
