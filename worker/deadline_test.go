package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
)

// TestRetriesEndAtTheDeadline: errors that use up no retries (the auth
// endpoint down, a rate limit) retry until the job's deadline, then the job
// fails with the last error instead of retrying for ever.
func TestRetriesEndAtTheDeadline(t *testing.T) {
	for _, tt := range []struct {
		name   string
		faults simulator.Faults
		want   string
	}{
		{"auth down", simulator.Faults{AuthDown: true}, "auth"},
		{"rate limited", simulator.Faults{RateLimited: 1}, "rate limited"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := setup(t)
			if err := s.sim.SetFaults(tt.faults); err != nil {
				t.Fatal(err)
			}
			jc := store.NewClient(s.rdb, store.Options{Deadline: time.Second})
			t.Cleanup(func() { _ = jc.Close() })
			v, err := jc.Enqueue(t.Context(), "alice", beijing)
			if err != nil {
				t.Fatal(err)
			}
			got, err := jc.Wait(t.Context(), "alice", v.JobID, 20*time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != jobs.StateFailed || got.Error == nil || !strings.Contains(got.Error.Message, tt.want) {
				t.Fatalf("after the deadline: %s %+v", got.State, got.Error)
			}
		})
	}
}
