// Package testwait is the tests' one way to wait for something to happen:
// poll a condition until it holds, with a generous bound that is reached
// only when it never does.
package testwait

import (
	"testing"
	"time"
)

// Until polls cond until it holds, failing t with what after limit. It
// polls every millisecond at first, then less often, up to every 50 ms, so
// that a quick condition is seen at once and a slow one costs little.
func Until(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %v for %s", limit, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}
