package mcp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestLargeRequestsBounded: at most MaxLargeRequests large bodies are read
// at once (bounding memory); one more is answered 503 with Retry-After,
// while small requests still pass. The handler holds each large request
// until the test lets it go, so the count is exact, whatever the load.
func TestLargeRequestsBounded(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := limitBody(make(chan struct{}, MaxLargeRequests), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > LargeRequestBytes {
			entered <- struct{}{}
			<-release
		}
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	post := func(n int) *http.Response {
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader(strings.Repeat(" ", n)))
		if err != nil {
			t.Error(err)
			return nil
		}
		resp.Body.Close()
		return resp
	}
	done := make(chan *http.Response, MaxLargeRequests)
	for range MaxLargeRequests {
		go func() { done <- post(LargeRequestBytes + 1) }()
		<-entered
	}
	if resp := post(LargeRequestBytes + 1); resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("one large request too many: %+v; want 503 with Retry-After", resp)
	}
	if resp := post(100); resp == nil || resp.StatusCode != http.StatusOK {
		t.Errorf("a small request while large ones wait: %+v; want 200", resp)
	}
	if resp := post(MaxRequestBytes + 1); resp == nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over MaxRequestBytes: %+v; want 413", resp)
	}
	close(release)
	for range MaxLargeRequests {
		if resp := <-done; resp == nil || resp.StatusCode != http.StatusOK {
			t.Errorf("a held large request: %+v; want 200 once let go", resp)
		}
	}
	// The slots are free again.
	go func() { done <- post(LargeRequestBytes + 1) }()
	<-entered
	if resp := <-done; resp == nil || resp.StatusCode != http.StatusOK {
		t.Errorf("a large request after the others ended: %+v", resp)
	}
}
