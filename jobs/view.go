package jobs

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/hibiken/asynq"
)

// State is the state of a job as clients see it.
type State string

// Job states.
const (
	StatePending   State = "pending"
	StateScheduled State = "scheduled"
	StateActive    State = "active"
	StateRetry     State = "retry"
	StateCompleted State = "completed"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

// Final reports whether a job in this state will not change again.
func (s State) Final() bool {
	return s == StateCompleted || s == StateFailed || s == StateCancelled
}

// View is a job as the MCP tools answer it.
type View struct {
	JobID string `json:"job_id" jsonschema:"The job's ID; pass it to get_job or cancel_job."`
	// Type is the asynq task type, e.g. "intranet:aspect".
	Type  string `json:"type" jsonschema:"The job's task type, e.g. intranet:aspect."`
	State State  `json:"state" jsonschema:"The job's state."`
	// Result is set when the job completed: the platform's data, the
	// execution time and the attempts.
	Result *Result `json:"result,omitempty" jsonschema:"Set when the job completed."`
	// Error is set when the job failed, and while it waits to retry.
	Error    *Failure `json:"error,omitempty" jsonschema:"Why the job failed, or why its last attempt failed while it waits to retry."`
	Attempts int      `json:"attempts" jsonschema:"Attempts made so far, the running one included."`
	// NextAttemptAt is when a scheduled or retrying job runs next.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty" jsonschema:"When a scheduled or retrying job runs next."`
	CreatedAt     *time.Time `json:"created_at,omitempty" jsonschema:"When the job was enqueued."`
	CompletedAt   *time.Time `json:"completed_at,omitempty" jsonschema:"When the job ended."`
	// Batch is, for a batch job whose submit the platform answered, its
	// platform task: task_id, the platform's state and progress.
	Batch *BatchStatus `json:"batch,omitempty" jsonschema:"Batch jobs: the latest known status of the platform task."`
	// CancelRequested is true while the worker carries out a cancel_job
	// of a batch job that has not ended yet.
	CancelRequested bool `json:"cancel_requested,omitempty" jsonschema:"True while the worker carries out a cancel_job of a batch job that has not ended yet."`
	// Owner is the identity that created the job; never shown.
	Owner string `json:"-"`
}

// ViewOf builds the view of an asynq task.
func ViewOf(info *asynq.TaskInfo) *View {
	v := &View{
		JobID: info.ID,
		Type:  info.Type,
		Owner: info.Headers[HeaderOwner],
	}
	if t, err := time.Parse(time.RFC3339Nano, info.Headers[HeaderCreatedAt]); err == nil {
		v.CreatedAt = &t
	}
	var rec record
	if len(info.Result) > 0 {
		_ = json.Unmarshal(info.Result, &rec)
	}
	switch info.State {
	case asynq.TaskStatePending, asynq.TaskStateAggregating:
		v.State, v.Attempts = StatePending, info.Retried
	case asynq.TaskStateScheduled:
		v.State, v.Attempts = StateScheduled, info.Retried
		v.NextAttemptAt = TimePtr(info.NextProcessAt)
	case asynq.TaskStateActive:
		v.State, v.Attempts = StateActive, info.Retried+1
	case asynq.TaskStateRetry:
		v.State, v.Attempts = StateRetry, info.Retried
		v.NextAttemptAt = TimePtr(info.NextProcessAt)
		v.Error = &Failure{Message: info.LastErr}
	case asynq.TaskStateCompleted:
		v.State, v.Attempts = StateCompleted, info.Retried+1
		res := rec.Result
		if rec.Attempts > 0 {
			v.Attempts = rec.Attempts
		}
		res.Attempts = v.Attempts
		v.Result = &res
		v.CompletedAt = TimePtr(info.CompletedAt)
	case asynq.TaskStateArchived:
		v.State, v.Attempts = StateFailed, info.Retried+1
		if rec.Attempts > 0 {
			v.Attempts = rec.Attempts
		}
		if rec.Error != nil {
			v.Error = rec.Error
		} else {
			v.Error = &Failure{Message: info.LastErr}
		}
		v.CompletedAt = TimePtr(info.LastFailedAt)
	}
	return v
}

// TimePtr returns &t, or nil for the zero time.
func TimePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// IsNotFound reports an Inspector error that means "no such task".
func IsNotFound(err error) bool {
	return errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound)
}

// BatchStatus is a batch job's platform task as the job view shows it.
type BatchStatus struct {
	TaskID string `json:"task_id" jsonschema:"The platform's batch task ID."`
	// State is the platform's state: QUEUED, RUNNING, SUCCEEDED, FAILED
	// or CANCELLED; empty until the first check.
	State    string `json:"state,omitempty" jsonschema:"The platform's state: QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED; empty until the first check."`
	Progress int    `json:"progress" jsonschema:"The platform's progress, as it reported it."`
	// Status is the platform's latest status object, as it answered it.
	Status json.RawMessage `json:"status,omitempty" jsonschema:"The platform's latest status object, as it answered it."`
	// ObservedAt is when a worker read it.
	ObservedAt *time.Time `json:"observed_at,omitempty" jsonschema:"When a worker read the status."`
}
