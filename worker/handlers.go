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

// errAuthUnavailable marks a job attempt that could not get a token: the
// auth endpoint is down or refuses the service account. It is retried
// without using up the job's retries.
var errAuthUnavailable = errors.New("worker: platform token unavailable")

// errCancelled ends a job that its owner cancelled.
var errCancelled = errors.New("cancelled by its owner")

// errCallerTokenExpired is the failure of a job whose caller-supplied token
// the platform refused; such a token is never refreshed.
var errCallerTokenExpired = errors.New("the platform refused the auth_token you gave (expired or never valid); give a current token, or leave auth_token out to use the service token")

// errCallerTokenMissing is the failure of a job that was given a caller
// token which is no longer stored.
var errCallerTokenMissing = errors.New("the auth_token you gave is no longer stored (it is kept only while the job lives); submit the job again")

func (w *Worker) handleAspect(ctx context.Context, t *asynq.Task) error {
	var p jobs.AspectPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	return w.run(ctx, t, intranet.OpAspect, p.WithDefaults())
}

func (w *Worker) handleBigQuery(ctx context.Context, t *asynq.Task) error {
	var p jobs.QueryPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	return w.run(ctx, t, intranet.OpBigQuery, p.WithDefaults())
}

func (w *Worker) handleDAG(ctx context.Context, t *asynq.Task) error {
	var p jobs.DAGPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	return w.run(ctx, t, intranet.OpDAG, p)
}

// decode decodes a task payload; a payload that cannot decode is not retried.
func decode(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return fmt.Errorf("decode %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	return nil
}

// run makes one platform call for a job and records its result or failure.
func (w *Worker) run(ctx context.Context, t *asynq.Task, op intranet.Operation, body any, opts ...intranet.CallOption) error {
	start := time.Now()
	resp, err := w.call(ctx, t, op, body, opts...)
	if err != nil {
		return w.fail(ctx, t, err, start)
	}
	return w.succeed(ctx, t, resp.Data, resp.Duration)
}

// succeed records a job's result.
func (w *Worker) succeed(ctx context.Context, t *asynq.Task, data json.RawMessage, took time.Duration) error {
	id := t.ResultWriter().TaskID()
	retried, _ := asynq.GetRetryCount(ctx)
	res := jobs.Result{Data: data, ExecutionTimeMS: took.Milliseconds(), Attempts: retried + 1}
	if err := w.recordEnd(ctx, t, jobs.EncodeResult(res)); err != nil {
		return fmt.Errorf("record result: %w", err)
	}
	w.ended(ctx, t, id)
	w.log.InfoContext(ctx, "job completed", slog.String("job_id", id), slog.String("type", t.Type()),
		slog.Int("attempt", res.Attempts), slog.Int64("execution_time_ms", res.ExecutionTimeMS))
	return nil
}

// fail decides what a failed attempt leads to: a final failure, recorded in
// the job's result, or a retry.
func (w *Worker) fail(ctx context.Context, t *asynq.Task, err error, start time.Time) error {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return err // shutdown or cancellation: see the cancellation middleware
	}
	if !w.final(ctx, err, jobs.DeadlineOf(t)) {
		return err
	}
	w.recordFailure(ctx, t, failureOf(err), start)
	return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
}

// final reports whether a failed attempt ends its job, whatever the error's
// class: a permanent error, the retries used up by errors that are the
// job's fault, or the job's deadline passed (an auth outage or a rate limit
// uses up no retries, so only the deadline bounds them).
func (w *Worker) final(ctx context.Context, err error, deadline time.Time) bool {
	if !retryable(err) {
		return true
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	if retried >= maxRetry && isFailure(err) {
		return true
	}
	return !deadline.IsZero() && time.Now().After(deadline)
}

// recordFailure stores why a job failed for good.
func (w *Worker) recordFailure(ctx context.Context, t *asynq.Task, f jobs.Failure, start time.Time) {
	id := t.ResultWriter().TaskID()
	retried, _ := asynq.GetRetryCount(ctx)
	if err := w.recordEnd(ctx, t, jobs.EncodeFailure(f, retried+1, time.Since(start).Milliseconds())); err != nil {
		w.log.WarnContext(ctx, "record failure", slog.String("job_id", id), slog.Any("error", err))
	}
	w.ended(ctx, t, id)
}

// recordEnd writes a job's result or final failure and announces its end
// in one round trip (store.RecordEnd), so that the announce middleware has
// nothing left to send.
func (w *Worker) recordEnd(ctx context.Context, t *asynq.Task, result []byte) error {
	queue, _ := asynq.GetQueueName(ctx)
	if err := store.RecordEnd(ctx, w.rdb, queue, t.ResultWriter().TaskID(), result); err != nil {
		return err
	}
	if announced, ok := ctx.Value(announcedKey{}).(*bool); ok {
		*announced = true
	}
	return nil
}

// ended cleans up after a job that will not run again: it deletes the
// caller's token the job was given (not one it borrows from a batch job).
func (w *Worker) ended(ctx context.Context, t *asynq.Task, id string) {
	if _, own := store.CredentialJob(t); !own {
		return
	}
	if err := store.DropCredential(context.WithoutCancel(ctx), w.rdb, id); err != nil {
		w.log.WarnContext(ctx, "drop caller credential", slog.String("job_id", id), slog.Any("error", err))
	}
}

// call makes a platform call with the caller's own token when the job has
// one (never refreshed), else with the shared token, refreshed once on 40003.
func (w *Worker) call(ctx context.Context, t *asynq.Task, op intranet.Operation, body any, opts ...intranet.CallOption) (*intranet.Response, error) {
	if id, _ := store.CredentialJob(t); id != "" {
		own, err := store.Credential(ctx, w.rdb, id)
		if err != nil {
			return nil, fmt.Errorf("read caller credential: %w", err)
		}
		if own == "" {
			return nil, errCallerTokenMissing
		}
		resp, err := w.platform(ctx, op, own, body, opts...)
		if errors.Is(err, intranet.ErrTokenExpired) {
			return nil, errCallerTokenExpired
		}
		return resp, err
	}
	tok, err := w.cfg.Tokens.Token(ctx)
	if err != nil {
		return nil, w.authError(ctx, err)
	}
	resp, err := w.platform(ctx, op, tok.Value, body, opts...)
	if !errors.Is(err, intranet.ErrTokenExpired) {
		return resp, err
	}
	w.log.InfoContext(ctx, "token expired; refreshing", slog.String("op", op.Name), slog.Any("token", tok))
	if tok, err = w.cfg.Tokens.Refresh(ctx, tok); err != nil {
		return nil, w.authError(ctx, err)
	}
	return w.platform(ctx, op, tok.Value, body, opts...)
}

// platform makes one timed platform call.
func (w *Worker) platform(ctx context.Context, op intranet.Operation, tok string, body any, opts ...intranet.CallOption) (*intranet.Response, error) {
	start := time.Now()
	resp, err := w.cfg.Client.Call(ctx, op, tok, body, opts...)
	w.metrics.observeCall(op, time.Since(start), err)
	return resp, err
}

// authError marks a failure to get a token as an outage, unless the caller
// itself gave up; a refusal of this replica's own credentials hands the job
// back and parks the replica.
func (w *Worker) authError(ctx context.Context, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if refused(err) {
		return w.handBack(ctx, err)
	}
	return fmt.Errorf("%w: %w", errAuthUnavailable, err)
}

// retryable reports whether another attempt may succeed.
func retryable(err error) bool {
	switch {
	case errors.Is(err, errCallerTokenExpired), errors.Is(err, errCallerTokenMissing), errors.Is(err, errNoTaskID):
		return false
	case errors.Is(err, errAuthUnavailable), errors.Is(err, errHandedBack):
		return true
	}
	var ie *intranet.Error
	if errors.As(err, &ie) {
		return intranet.Retryable(err)
	}
	return true // Redis hiccups, timeouts outside the client: try again
}

// failureOf describes a final error for the job view.
func failureOf(err error) jobs.Failure {
	var ie *intranet.Error
	switch {
	case errors.Is(err, errCallerTokenExpired):
		return jobs.Failure{Code: 40003, Class: intranet.ClassTokenExpired.String(), Message: err.Error()}
	case errors.As(err, &ie):
		return jobs.Failure{Code: ie.Code, Class: ie.Class.String(), Message: ie.Error()}
	default:
		return jobs.Failure{Class: "internal", Message: err.Error()}
	}
}
