package jobs

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
)

// Task type names, "domain:verb" as asynq's documentation writes them.
const (
	TypeAspect      = "intranet:aspect"
	TypeBigQuery    = "intranet:bigquery"
	TypeDAG         = "intranet:dag"
	TypeBatchSubmit = "batch:submit"
	TypeBatchPoll   = "batch:poll"
	TypeBatchStatus = "batch:status"
)

// Queue names. Interactive tools, batch submits and batch polls run in
// separate weighted queues so that a flood of polls never starves an
// interactive call.
const (
	QueueInteractive = "interactive"
	QueueBatch       = "batch"
	QueuePoll        = "poll"
)

// Queues is the queue priority map a worker serves (asynq.Config.Queues).
var Queues = map[string]int{
	QueueInteractive: 6,
	QueueBatch:       3,
	QueuePoll:        1,
}

// Headers set on every task; they are not part of the payload.
const (
	HeaderOwner     = "owner"
	HeaderCreatedAt = "created_at"
	HeaderDeadline  = "deadline"
)

// Spec is how one job type is enqueued.
type Spec struct {
	// Type is the asynq task type.
	Type string
	// Kind prefixes job IDs of this type ("aspect-…"), so an ID names its queue.
	Kind string
	// Queue is the asynq queue.
	Queue string
	// MaxRetry is the number of retries after the first attempt.
	MaxRetry int
	// Timeout bounds one attempt.
	Timeout time.Duration
	// Retention, when set, replaces the client's retention for this type.
	Retention time.Duration
	// Deadline bounds a job's whole life from its enqueue: retries that
	// use up no attempts (an auth outage, a rate limit) stop there, the
	// job fails with its last error, and a caller's auth_token expires.
	Deadline time.Duration
}

// specs lists every job type. The platform's own calls may take minutes
// (client timeout 120 s), so an attempt gets a little more than that. A
// batch job's life is its batch's: its deadline is how long the batch is
// followed (BatchDeadline).
var specs = []Spec{
	{Type: TypeAspect, Kind: "aspect", Queue: QueueInteractive, MaxRetry: 25, Timeout: 150 * time.Second, Deadline: InteractiveDeadline},
	{Type: TypeBigQuery, Kind: "query", Queue: QueueInteractive, MaxRetry: 25, Timeout: 150 * time.Second, Deadline: InteractiveDeadline},
	{Type: TypeDAG, Kind: "dag", Queue: QueueInteractive, MaxRetry: 25, Timeout: 150 * time.Second, Deadline: InteractiveDeadline},
	{Type: TypeBatchStatus, Kind: "status", Queue: QueueInteractive, MaxRetry: 10, Timeout: 150 * time.Second, Retention: 10 * time.Minute, Deadline: 10 * time.Minute},
	{Type: TypeBatchSubmit, Kind: "submit", Queue: QueueBatch, MaxRetry: 50, Timeout: 150 * time.Second, Deadline: BatchDeadline},
	// A poll is one scheduled check of a batch job's platform task; the
	// chain of checks is the batch job's (see PollTaskID). It returns an
	// error only when Redis fails it.
	{Type: TypeBatchPoll, Kind: "poll", Queue: QueuePoll, MaxRetry: 25, Timeout: 150 * time.Second, Retention: time.Minute, Deadline: BatchDeadline},
}

// Job deadlines (Spec.Deadline).
const (
	// InteractiveDeadline bounds an aspect, query or DAG job.
	InteractiveDeadline = 2 * time.Hour
	// BatchDeadline bounds a batch job: how long its batch is followed.
	BatchDeadline = 7 * 24 * time.Hour
)

// SpecFor returns the spec of a task type.
func SpecFor(taskType string) (Spec, bool) {
	for _, s := range specs {
		if s.Type == taskType {
			return s, true
		}
	}
	return Spec{}, false
}

// SpecForID returns the spec whose kind prefixes a job ID.
func SpecForID(id string) (Spec, bool) {
	kind, _, ok := strings.Cut(id, "-")
	if !ok {
		return Spec{}, false
	}
	for _, s := range specs {
		if s.Kind == kind {
			return s, true
		}
	}
	return Spec{}, false
}

// NewJobID returns a fresh job ID for a spec: "<kind>-<uuid>".
func NewJobID(s Spec) string { return s.Kind + "-" + uuid.NewString() }

// Payload is the body of one job type.
type Payload interface {
	// TaskType is the asynq task type the payload belongs to.
	TaskType() string
	// Validate reports the first problem with the payload as a *FieldError.
	Validate() error
}

// FieldError is a bad argument: which field, and what is wrong with it.
type FieldError struct {
	Field   string
	Problem string
}

// Error implements error.
func (e *FieldError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Problem) }

// Is makes errors.Is(err, ErrInvalid) true for every FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// FieldErrorf returns a FieldError on field with a formatted problem.
func FieldErrorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Options returns the asynq options of a spec.
func (s Spec) Options(id string, retention time.Duration) []asynq.Option {
	if s.Retention > 0 {
		retention = s.Retention
	}
	return []asynq.Option{
		asynq.TaskID(id),
		asynq.Queue(s.Queue),
		asynq.MaxRetry(s.MaxRetry),
		asynq.Timeout(s.Timeout),
		asynq.Retention(retention),
	}
}

// OwnerOf returns the identity that owns a task's job.
func OwnerOf(t *asynq.Task) string { return t.Headers()[HeaderOwner] }

// DeadlineOf returns the deadline of a task's job, or the zero time for a
// task enqueued without one.
func DeadlineOf(t *asynq.Task) time.Time {
	d, _ := time.Parse(time.RFC3339Nano, t.Headers()[HeaderDeadline])
	return d
}

// CreatedAtOf returns when a task's job was enqueued, or the zero time.
func CreatedAtOf(t *asynq.Task) time.Time {
	d, _ := time.Parse(time.RFC3339Nano, t.Headers()[HeaderCreatedAt])
	return d
}
