package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
)

// TestWorkerWithoutCredentialsRefusesToStart: a worker without a service
// account says what to set and exits, rather than take jobs it could only
// hand back.
func TestWorkerWithoutCredentialsRefusesToStart(t *testing.T) {
	redisURL := redistest.Start(t).URL
	for name, env := range map[string]map[string]string{
		"no username": {"INTRANET_PASSWORD": "sim-password"},
		"no password": {"INTRANET_USERNAME": "svc-mcp"},
	} {
		t.Run(name, func(t *testing.T) {
			env["REDIS_URL"] = redisURL
			env["INTRANET_BASE_URL"] = "http://127.0.0.1:1"
			var stderr bytes.Buffer
			code := run(t.Context(), []string{"worker"}, nil, io.Discard, &stderr, envFunc(env))
			if code != 1 || !strings.Contains(stderr.String(), "INTRANET_USERNAME and INTRANET_PASSWORD") {
				t.Errorf("exit %d:\n%s", code, stderr.String())
			}
		})
	}
}

// get answers the status code and body of a GET.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitStatus polls url until it answers code.
func waitStatus(t *testing.T, url string, code int, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got, body := get(t, url)
		if got == code {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answered %d after %v, want %d: %s", url, got, limit, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
