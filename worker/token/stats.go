package token

import (
	"sync/atomic"
	"time"
)

// Stats are the counters of one process's Shared token, for metrics.
type Stats struct {
	// Refreshes is the number of tokens this process fetched and stored.
	Refreshes int64
	// RefreshSkipped counts lock holders that found the token already replaced.
	RefreshSkipped int64
	// RefreshFailures counts failed auth calls.
	RefreshFailures int64
	// InvalidCredentials counts auth calls refused for this process's
	// credentials (40101); they are also RefreshFailures.
	InvalidCredentials int64
	// WritesRefused counts stores refused because a token issued later was
	// already stored (this process then adopted that one).
	WritesRefused int64
	// ExpiredSeen counts 40003 answers reported through Refresh.
	ExpiredSeen int64
	// LockWaits counts refreshes that waited for another replica.
	LockWaits int64
	// LockWait is the total time spent waiting.
	LockWait time.Duration
	// AuthTime is the total time spent in auth calls.
	AuthTime time.Duration
}

type counters struct {
	refreshes, refreshSkipped, refreshFailures, writesRefused, expiredSeen atomic.Int64
	invalidCredentials                                                     atomic.Int64
	lockWaits, lockWaitNanos, authNanos                                    atomic.Int64
}

// Stats returns the counters so far.
func (s *Shared) Stats() Stats {
	c := &s.stats
	return Stats{
		Refreshes:          c.refreshes.Load(),
		RefreshSkipped:     c.refreshSkipped.Load(),
		RefreshFailures:    c.refreshFailures.Load(),
		InvalidCredentials: c.invalidCredentials.Load(),
		WritesRefused:      c.writesRefused.Load(),
		ExpiredSeen:        c.expiredSeen.Load(),
		LockWaits:          c.lockWaits.Load(),
		LockWait:           time.Duration(c.lockWaitNanos.Load()),
		AuthTime:           time.Duration(c.authNanos.Load()),
	}
}
