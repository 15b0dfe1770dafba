package jobs

import (
	"errors"
	"fmt"
)

// Sentinel errors of the package.
var (
	// ErrInvalid marks a payload that failed validation; the error is a *FieldError.
	ErrInvalid = errors.New("jobs: invalid arguments")
	// ErrNotFound is the answer for an unknown job and for another owner's job alike.
	ErrNotFound = errors.New("jobs: job not found")
	// ErrUnavailable wraps a Redis failure: the queue cannot be reached now.
	ErrUnavailable = errors.New("jobs: queue unavailable (Redis does not answer); try again shortly")
	// ErrNotReplicated marks a job queued on the Redis primary that fewer
	// replicas than Options.WaitReplicas acknowledged in time; it comes
	// inside an *UncertainError.
	ErrNotReplicated = errors.New("jobs: job not yet on enough Redis replicas")
)

// UncertainError is an enqueue whose outcome is unknown: Redis stopped
// answering after it may have received the job. The job may still run.
type UncertainError struct {
	// JobID is the ID the job has if it was queued.
	JobID string
	Err   error
}

// Error says what to do: look the job up before enqueueing again.
func (e *UncertainError) Error() string {
	if errors.Is(e.Err, ErrNotReplicated) {
		return fmt.Sprintf("jobs: the job is queued as %s on the Redis primary, but %v: it runs unless a failover loses it; check it with get_job before calling again (or repeat with the same idempotency_key)", e.JobID, e.Err)
	}
	return fmt.Sprintf("jobs: Redis did not confirm the enqueue (%v); the job may still run as %s: check it with get_job or list_jobs before calling again (or repeat with the same idempotency_key)", e.Err, e.JobID)
}

// Unwrap lets errors.Is(err, ErrUnavailable) hold.
func (e *UncertainError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }
