package mcp

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/jobs"
)

// TestViewOutcome: the outcome counted for a call is the state of the job
// view it answered, whatever the view holds besides.
func TestViewOutcome(t *testing.T) {
	now := time.Now()
	view := func(v jobs.View) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		content any
		want    string
	}{
		{"completed", view(jobs.View{JobID: "dag-1", State: jobs.StateCompleted, CreatedAt: &now, Result: &jobs.Result{Data: json.RawMessage(`{"state":"failed","n":[1,2,3]}`)}}), "ok"},
		{"failed", view(jobs.View{JobID: "dag-1", State: jobs.StateFailed, Error: &jobs.Failure{Class: "permanent"}}), "job_failed"},
		{"cancelled", view(jobs.View{JobID: "dag-1", State: jobs.StateCancelled}), "job_cancelled"},
		{"state first", json.RawMessage(`{"state":"failed","job_id":"x"}`), "job_failed"},
		{"not a view", json.RawMessage(`[1,2]`), "ok"},
		{"not JSON", json.RawMessage(`{"job_id":`), "ok"},
		{"not raw", map[string]any{"state": "failed"}, "ok"},
	} {
		if got := viewOutcome(tc.content); got != tc.want {
			t.Errorf("%s: viewOutcome = %q, want %q", tc.name, got, tc.want)
		}
	}
}
