package simulator

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Stats are the simulator's counters since it started, as GET /sim/stats
// answers them.
type Stats struct {
	AuthCalls         int64 `json:"auth_calls"`         // calls to the auth endpoint, whatever their outcome
	AuthFailures      int64 `json:"auth_failures"`      // auth calls answered 40101
	TokensIssued      int64 `json:"tokens_issued"`      // tokens handed out
	ExpiredResponses  int64 `json:"expired_responses"`  // /api calls answered 40003
	BatchSubmissions  int64 `json:"batch_submissions"`  // batch tasks created
	IdempotentReplays int64 `json:"idempotent_replays"` // submits answered from an Idempotency-Key
	FaultsInjected    int64 `json:"faults_injected"`    // faults injected, auth_down answers included
	Expiries          int64 `json:"expiries"`           // POST /sim/expire (or ExpireTokens) calls
	BatchRunning      int64 `json:"batch_running"`      // batch tasks not yet SUCCEEDED, FAILED or CANCELLED now
	// Calls counts calls per operation: auth, aspect, bigquery, dag,
	// batch_submit, batch_status, batch_cancel.
	Calls map[string]int64 `json:"calls"`
}

// statsCounter holds the live counters.
type statsCounter struct {
	authCalls, authFailures, tokensIssued, expiredResponses atomic.Int64
	batchSubmissions, idempotentReplays, faultsInjected     atomic.Int64
	expiries                                                atomic.Int64
	mu                                                      sync.Mutex
	calls                                                   map[string]int64
}

func (c *statsCounter) init() {
	c.calls = make(map[string]int64, len(operations))
	for _, op := range operations {
		c.calls[op] = 0
	}
}

func (c *statsCounter) add(n *atomic.Int64) { n.Add(1) }

func (c *statsCounter) call(op string) {
	c.mu.Lock()
	c.calls[op]++
	c.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (s *Simulator) Stats() Stats {
	c := &s.stats
	c.mu.Lock()
	calls := maps.Clone(c.calls)
	c.mu.Unlock()
	return Stats{
		AuthCalls:         c.authCalls.Load(),
		AuthFailures:      c.authFailures.Load(),
		TokensIssued:      c.tokensIssued.Load(),
		ExpiredResponses:  c.expiredResponses.Load(),
		BatchSubmissions:  c.batchSubmissions.Load(),
		IdempotentReplays: c.idempotentReplays.Load(),
		FaultsInjected:    c.faultsInjected.Load(),
		Expiries:          c.expiries.Load(),
		BatchRunning:      s.batchRunning(),
		Calls:             calls,
	}
}
