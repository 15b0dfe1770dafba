package jobs

import "errors"

// Sentinel errors of the package.
var (
	// ErrInvalid marks a payload that failed validation; the error is a *FieldError.
	ErrInvalid = errors.New("jobs: invalid arguments")
	// ErrNotFound is the answer for an unknown job and for another owner's job alike.
	ErrNotFound = errors.New("jobs: job not found")
	// ErrUnavailable wraps a Redis failure: the queue cannot be reached now.
	ErrUnavailable = errors.New("jobs: queue unavailable (Redis does not answer); try again shortly")
)
