package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// RetryPolicy turns the platform's error classes into retry delays. asynq's
// default backoff grows to hours; this one is capped.
type RetryPolicy struct {
	// Base is the first retry delay of a transient error. Default: 1s.
	Base time.Duration
	// Max caps the delay of a transient error. Default: 60s.
	Max time.Duration
	// AuthWait is the delay of a job that could not get a token because
	// the auth endpoint is down (the shared token's cooldown keeps the
	// endpoint itself from being hammered). Default: 5s.
	AuthWait time.Duration
	// InvalidCredentialsWait is the delay after the auth endpoint refused
	// the service account's credentials (40101). Default: 30s.
	InvalidCredentialsWait time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Base <= 0 {
		p.Base = time.Second
	}
	if p.Max <= 0 {
		p.Max = time.Minute
	}
	if p.AuthWait <= 0 {
		p.AuthWait = 5 * time.Second
	}
	if p.InvalidCredentialsWait <= 0 {
		p.InvalidCredentialsWait = 30 * time.Second
	}
	return p
}

// Delay is an asynq.RetryDelayFunc: n is the number of retries so far.
// Retries that are not the job's fault (see isFailure) do not raise n, so
// their delays are fixed.
func (p RetryPolicy) Delay(n int, err error, _ *asynq.Task) time.Duration {
	if errors.Is(err, errHandedBack) {
		// Back to the queue at once, for a replica whose credentials work.
		return jitter(100 * time.Millisecond)
	}
	if errors.Is(err, errAuthUnavailable) {
		if errors.Is(err, intranet.ErrInvalidCredentials) {
			return p.InvalidCredentialsWait + jitter(p.InvalidCredentialsWait/2)
		}
		return p.AuthWait + jitter(p.AuthWait/2)
	}
	var ie *intranet.Error
	if errors.As(err, &ie) && ie.Class == intranet.ClassRateLimited {
		// Wait what the platform asked, plus a little spread.
		return ie.RetryAfter + jitter(ie.RetryAfter/10+10*time.Millisecond)
	}
	return backoff(n, p.Base, p.Max)
}

// backoff is capped exponential backoff with equal jitter: half the delay
// is fixed, half random, so retries spread out but never come early.
func backoff(n int, base, maxDelay time.Duration) time.Duration {
	d := base
	for i := 0; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	return d/2 + jitter(d/2)
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// isFailure is asynq's IsFailure: errors that are not the job's fault (a
// rate limit, the platform's auth being down or refusing the service
// account, a shutdown) retry without using up the job's retries, so an
// outage archives nothing until the job's deadline (see Worker.final). A
// final error (SkipRetry) is always a failure: asynq never archives a job
// whose error is not one.
func isFailure(err error) bool {
	if errors.Is(err, asynq.SkipRetry) {
		return true
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, errAuthUnavailable) || errors.Is(err, errHandedBack) {
		return false
	}
	var ie *intranet.Error
	if errors.As(err, &ie) && ie.Class == intranet.ClassRateLimited {
		return false
	}
	return true
}
