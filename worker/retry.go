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
	// AuthBase and AuthMax bound the delay after the auth endpoint refused
	// the service account's credentials (40101), so as not to hammer it.
	// Defaults: 30s and 10m.
	AuthBase, AuthMax time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Base <= 0 {
		p.Base = time.Second
	}
	if p.Max <= 0 {
		p.Max = time.Minute
	}
	if p.AuthBase <= 0 {
		p.AuthBase = 30 * time.Second
	}
	if p.AuthMax <= 0 {
		p.AuthMax = 10 * time.Minute
	}
	return p
}

// Delay is an asynq.RetryDelayFunc: n is the number of retries so far.
func (p RetryPolicy) Delay(n int, err error, _ *asynq.Task) time.Duration {
	var ie *intranet.Error
	if errors.As(err, &ie) {
		switch ie.Class {
		case intranet.ClassRateLimited:
			// Wait what the platform asked, plus a little spread.
			return ie.RetryAfter + jitter(ie.RetryAfter/10+10*time.Millisecond)
		case intranet.ClassInvalidCredentials:
			return backoff(n, p.AuthBase, p.AuthMax)
		}
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
// outage of any length archives nothing.
func isFailure(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, errAuthUnavailable) {
		return false
	}
	var ie *intranet.Error
	if errors.As(err, &ie) && ie.Class == intranet.ClassRateLimited {
		return false
	}
	return true
}
