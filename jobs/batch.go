package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// sharedOwner owns jobs that serve every identity alike (status queries).
const sharedOwner = "*"

// batchTTL is how long a batch record and a submission are kept: past the
// poll deadline, so a task followed for its whole life stays queryable.
const batchTTL = 8 * 24 * time.Hour

func submissionKey(submitJobID string) string { return "mcpjobs:submission:" + submitJobID }
func batchKey(taskID string) string           { return "mcpjobs:batch:" + taskID }

// RecordSubmission stores the platform task ID that a submit job got, so
// that a retried submit does not submit again.
func RecordSubmission(ctx context.Context, rdb redis.UniversalClient, submitJobID, taskID string) error {
	return rdb.Set(ctx, submissionKey(submitJobID), taskID, batchTTL).Err()
}

// Submission returns the platform task ID recorded for a submit job, or ""
// when it has not submitted yet.
func Submission(ctx context.Context, rdb redis.UniversalClient, submitJobID string) (string, error) {
	id, err := rdb.Get(ctx, submissionKey(submitJobID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return id, err
}

// BatchRecord is the latest status of a platform batch task seen by any job.
type BatchRecord struct {
	TaskID string `json:"task_id"`
	// Status is the platform's status object, as it answered it.
	Status json.RawMessage `json:"status,omitempty"`
	// State is the platform's state (QUEUED, RUNNING, SUCCEEDED, FAILED,
	// CANCELLED); Final when it will not change again.
	State string `json:"state,omitempty"`
	Final bool   `json:"final,omitempty"`
	// ObservedAt is when a job read it from the platform.
	ObservedAt time.Time `json:"observed_at,omitzero"`
	// ObservedBy is the job that read it.
	ObservedBy string `json:"observed_by,omitempty"`
}

// FinalBatchStates are the platform states that end a batch task.
var FinalBatchStates = []string{"SUCCEEDED", "FAILED", "CANCELLED"}

// IsFinalBatchState reports whether a platform state ends a batch task.
func IsFinalBatchState(state string) bool {
	for _, s := range FinalBatchStates {
		if s == state {
			return true
		}
	}
	return false
}

// RecordBatchStatus stores a status the platform gave for taskID. A final
// status is never replaced by a later non-final one.
func RecordBatchStatus(ctx context.Context, rdb redis.UniversalClient, taskID, jobID string, status json.RawMessage, observedAt time.Time) (BatchRecord, error) {
	var s struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(status, &s); err != nil {
		return BatchRecord{}, fmt.Errorf("jobs: batch status of %s is not an object: %w", taskID, err)
	}
	rec := BatchRecord{TaskID: taskID, Status: status, State: s.State, Final: IsFinalBatchState(s.State), ObservedAt: observedAt.UTC(), ObservedBy: jobID}
	b, err := json.Marshal(rec)
	if err != nil {
		return rec, err
	}
	final := "0"
	if rec.Final {
		final = "1"
	}
	err = recordBatchScript.Run(ctx, rdb, []string{batchKey(taskID)}, b, final, batchTTL.Milliseconds()).Err()
	return rec, err
}

// recordBatchScript writes a batch record unless a final one is stored.
// KEYS[1]: the record  ARGV[1]: record JSON  ARGV[2]: "1" if final  ARGV[3]: TTL ms
var recordBatchScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'final') == '1' and ARGV[2] ~= '1' then return 0 end
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'final', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`)

// LatestBatchStatus returns the latest recorded status of taskID, or nil.
func LatestBatchStatus(ctx context.Context, rdb redis.UniversalClient, taskID string) (*BatchRecord, error) {
	b, err := rdb.HGet(ctx, batchKey(taskID), "record").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec BatchRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("jobs: batch record of %s: %w", taskID, err)
	}
	return &rec, nil
}

// StartPolling enqueues the job that follows platform task taskID, owned by
// owner, unless it exists already. It answers the poll job's ID.
func (c *Client) StartPolling(ctx context.Context, owner, taskID, submitJobID string) (string, error) {
	spec, _ := SpecFor(TypeBatchPoll)
	p := pollPayload{BatchTaskPayload{TaskID: taskID, SubmitJobID: submitJobID, Since: time.Now().UTC()}}
	if err := p.Validate(); err != nil {
		return "", err
	}
	id := PollJobID(taskID)
	_, _, err := c.enqueue(ctx, owner, spec, id, p, "")
	return id, err
}

// CancelBatch enqueues the job that cancels platform task taskID on the
// platform (once per task while it is retained).
func (c *Client) CancelBatch(ctx context.Context, owner, taskID string) error {
	spec, _ := SpecFor(TypeBatchCancel)
	p := cancelPayload{BatchTaskPayload{TaskID: taskID}}
	if err := p.Validate(); err != nil {
		return err
	}
	_, _, err := c.enqueue(ctx, owner, spec, "cancel-"+taskID, p, "")
	return err
}

// statusBucket is the width of the window in which status queries for one
// task share one status job.
const statusBucket = 2 * time.Second

// QueryStatus answers the status of platform task taskID: from the record
// when it is final or younger than maxAge, else from a status job shared by
// every query in the same 2-second window, waited for up to wait.
func (c *Client) QueryStatus(ctx context.Context, owner, taskID string, maxAge, wait time.Duration, progress func(*View)) (*View, error) {
	if err := CheckTaskID("task_id", taskID); err != nil {
		return nil, err
	}
	rec, err := LatestBatchStatus(ctx, c.rdb, taskID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if rec != nil && (rec.Final || time.Since(rec.ObservedAt) <= maxAge) {
		return recordView(rec), nil
	}
	spec, _ := SpecFor(TypeBatchStatus)
	id := statusJobID(taskID, time.Now().UnixNano()/int64(statusBucket))
	if _, _, err := c.enqueue(ctx, sharedOwner, spec, id, statusPayload{BatchTaskPayload{TaskID: taskID}}, ""); err != nil {
		return nil, err
	}
	return c.Wait(ctx, owner, id, wait, progress)
}

// recordView presents a recorded status as a completed status job.
func recordView(rec *BatchRecord) *View {
	t := rec.ObservedAt
	return &View{
		JobID:       rec.ObservedBy,
		Type:        TypeBatchStatus,
		State:       StateCompleted,
		Result:      &Result{Data: rec.Status},
		Batch:       rec,
		CompletedAt: &t,
		Owner:       sharedOwner,
	}
}

// enrich adds to a batch job's view the latest status of its platform
// task, and marks cancelled jobs.
func (c *Client) enrich(ctx context.Context, v *View, info *asynq.TaskInfo) error {
	if info.State == asynq.TaskStateArchived {
		cancelled, err := c.isCancelled(ctx, v.JobID)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if cancelled {
			v.State, v.Error = StateCancelled, &Failure{Class: "cancelled", Message: "cancelled by its owner"}
		}
	}
	var taskID string
	switch info.Type {
	case TypeBatchSubmit:
		id, err := Submission(ctx, c.rdb, v.JobID)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		taskID = id
	case TypeBatchPoll, TypeBatchStatus, TypeBatchCancel:
		var p BatchTaskPayload
		if json.Unmarshal(info.Payload, &p) == nil {
			taskID = p.TaskID
		}
	}
	if taskID == "" {
		return nil
	}
	rec, err := LatestBatchStatus(ctx, c.rdb, taskID)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if rec == nil {
		rec = &BatchRecord{TaskID: taskID}
	}
	v.Batch = rec
	return nil
}
