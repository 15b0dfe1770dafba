package store

import (
	"errors"
	"testing"
)

// TestUndecodable: only an answer asynq could not interpret may be a lost
// job's fragment; Redis not answering is not (looking would wait again).
func TestUndecodable(t *testing.T) {
	for _, tt := range []struct {
		msg  string
		want bool
	}{
		{`asynq: FAILED_PRECONDITION: FAILED_PRECONDITION: "" is not supported task state`, true},
		{`asynq: INTERNAL_ERROR: cannot decode message: proto: cannot parse invalid wire-format data`, true},
		{`asynq: UNKNOWN: redis eval error: dial tcp 127.0.0.1:6379: connect: connection refused`, false},
		{`asynq: UNKNOWN: redis command error: SISMEMBER failed: i/o timeout`, false},
		{`context deadline exceeded`, false},
	} {
		if got := undecodable(errors.New(tt.msg)); got != tt.want {
			t.Errorf("undecodable(%q) = %v; want %v", tt.msg, got, tt.want)
		}
	}
}
