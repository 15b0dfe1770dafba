package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/jobs"
)

// SchedulePoll enqueues check round n of a batch job, to run after delay.
// The round's task ID is fixed (PollTaskID), so a second enqueue of one
// round is a no-op: a crash between two rounds cannot fork the chain.
func (c *Client) SchedulePoll(ctx context.Context, rec *BatchJob, n int, delay time.Duration) error {
	spec, _ := jobs.SpecFor(jobs.TypeBatchPoll)
	body, err := json.Marshal(jobs.PollPayload{JobID: rec.JobID, TaskID: rec.TaskID, Round: n})
	if err != nil {
		return err
	}
	headers := map[string]string{
		jobs.HeaderOwner:     rec.Owner,
		jobs.HeaderCreatedAt: formatTime(rec.CreatedAt),
		jobs.HeaderDeadline:  formatTime(rec.Deadline),
	}
	if rec.Credential {
		headers[HasCredential] = rec.JobID
	}
	opts := append(spec.Options(jobs.PollTaskID(rec.JobID, n), c.opts.Retention), asynq.ProcessIn(delay))
	_, err = c.enqueuer.EnqueueContext(ctx, asynq.NewTaskWithHeaders(spec.Type, body, headers), opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	return err
}

// ErrNotYourTask answers query_task_status for a platform task that no
// batch job of the caller's submitted, when it cannot ask the platform.
var ErrNotYourTask = &jobs.FieldError{Field: "task_id", Problem: "is not a batch task you submitted through mcpjobs; pass auth_token to ask the platform with your own token"}

// statusBucket is the width of the window in which one owner's status
// queries for one task share one status job.
const statusBucket = 2 * time.Second

// QueryStatus answers the status of platform task taskID for owner. A task
// one of owner's batch jobs submitted is answered from the job's record
// when it is final or younger than maxAge, else asked of the platform with
// the job's token. Another task is asked of the platform with authToken,
// or, only where Options.ServiceTokenStatus allows it and no other
// identity's job submitted the task, with the service token. The status
// job is owner's, shared by owner's queries in the same 2-second window
// (not with an authToken), and waited for up to wait.
func (c *Client) QueryStatus(ctx context.Context, owner, taskID string, maxAge, wait time.Duration, authToken string, progress func(*jobs.View)) (*jobs.View, error) {
	if err := jobs.CheckTaskID("task_id", taskID); err != nil {
		return nil, err
	}
	var rec *BatchJob
	foreign := false
	jobID, err := c.jobOfTask(ctx, taskID)
	switch {
	case err == nil:
		if rec, err = LoadBatchJob(ctx, c.rdb, jobID); err != nil {
			return nil, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
		}
		if rec != nil && rec.Owner != owner {
			rec, foreign = nil, true
		}
	case !errors.Is(err, errBatchNotFound):
		return nil, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
	}
	if rec != nil && rec.Status != nil && (rec.State.Final() || time.Since(rec.ObservedAt) <= maxAge) {
		return statusView(rec), nil
	}
	spec, _ := jobs.SpecFor(jobs.TypeBatchStatus)
	eo := enqueueOptions{}
	switch {
	case authToken != "":
		eo.credential = authToken
	case rec != nil:
		if rec.Credential {
			eo.credentialOf = rec.JobID
		}
	case c.opts.ServiceTokenStatus && !foreign:
	default:
		return nil, ErrNotYourTask
	}
	id := "status-" + uuid.NewString()
	if authToken == "" {
		bucket := time.Now().UnixNano() / int64(statusBucket)
		key := fmt.Sprintf("mcpjobs:statuswindow:%s:%d:%s", taskID, bucket, owner)
		if id, err = statusWindowScript.Run(ctx, c.rdb, []string{key}, id, (2 * statusBucket).Milliseconds()).Text(); err != nil {
			return nil, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
		}
	}
	if _, _, err := c.enqueue(ctx, owner, spec, id, jobs.StatusPayload{BatchTaskPayload: jobs.BatchTaskPayload{TaskID: taskID}}, eo); err != nil {
		return nil, err
	}
	v, err := c.Wait(ctx, owner, id, wait, progress)
	if err != nil {
		return nil, fmt.Errorf("status job %s: %w", id, err)
	}
	return v, nil
}

// statusWindowScript answers the status job of a window, choosing ARGV[1]
// when it has none.
//
// KEYS[1]: the window  ARGV[1]: a fresh job ID  ARGV[2]: TTL ms
var statusWindowScript = redis.NewScript(`
local id = redis.call('GET', KEYS[1])
if id then return id end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]`)

// statusView presents a batch job's recorded status as a completed status
// query: its result is the platform's status object.
func statusView(rec *BatchJob) *jobs.View {
	t := rec.ObservedAt.UTC()
	return &jobs.View{
		JobID:       rec.JobID,
		Type:        jobs.TypeBatchStatus,
		State:       jobs.StateCompleted,
		Result:      &jobs.Result{Data: rec.Status},
		Batch:       batchStatusOf(rec),
		CompletedAt: &t,
		Owner:       rec.Owner,
	}
}

// batchStatusOf is the view's summary of a batch job's platform task.
func batchStatusOf(rec *BatchJob) *jobs.BatchStatus {
	if rec.TaskID == "" {
		return nil
	}
	b := &jobs.BatchStatus{TaskID: rec.TaskID, State: rec.PlatformState, Progress: rec.Progress, Status: rec.Status}
	b.ObservedAt = jobs.TimePtr(rec.ObservedAt)
	return b
}

// batchView builds the view of a batch job from its record and, when
// asynq still holds it, its submit task: the record's state is the job's.
func batchView(rec *BatchJob, info *asynq.TaskInfo) *jobs.View {
	v := &jobs.View{JobID: rec.JobID, Type: jobs.TypeBatchSubmit, State: rec.State, Owner: rec.Owner,
		CancelRequested: rec.CancelRequested && !rec.State.Final()}
	v.CreatedAt = jobs.TimePtr(rec.CreatedAt)
	if info != nil {
		iv := jobs.ViewOf(info)
		v.Attempts = iv.Attempts
		if v.CreatedAt == nil {
			v.CreatedAt = iv.CreatedAt
		}
		// A submit that waits to be retried (its reply was lost, the
		// platform was down) says why.
		if v.State == jobs.StateActive && rec.TaskID == "" && info.State == asynq.TaskStateRetry {
			v.Error, v.NextAttemptAt = iv.Error, iv.NextAttemptAt
		}
	}
	v.Batch = batchStatusOf(rec)
	switch rec.State {
	case jobs.StateCompleted:
		v.Result = &jobs.Result{Data: rec.Status, Attempts: v.Attempts}
	case jobs.StateFailed, jobs.StateCancelled:
		v.Error = rec.Error
	}
	if rec.State.Final() {
		v.CompletedAt = jobs.TimePtr(rec.EndedAt)
	}
	return v
}
