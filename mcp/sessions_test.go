package mcp_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/internal/testwait"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/mcp"
)

// TestSessionEndedOnOneReplicaEndsOnAll: a replica that has a session in
// its cache refuses it as soon as another replica ends it (DELETE), well
// before its cache entry would age out.
func TestSessionEndedOnOneReplicaEndsOnAll(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	replica := func() string {
		jc := store.NewClient(rdb, store.Options{})
		t.Cleanup(func() { _ = jc.Close() })
		srv, err := mcp.New(mcp.Options{Jobs: jc})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		hs := httptest.NewServer(srv.HTTPHandler())
		t.Cleanup(hs.Close)
		return hs.URL + "/mcp"
	}
	a, b := replica(), replica()
	post := func(url, session, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	resp := post(a, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	session := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || session == "" {
		t.Fatalf("initialize: %s, session %q", resp.Status, session)
	}
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	hook := &redistest.RoundTrips{}
	rdb.AddHook(hook)
	testwait.Until(t, 10*time.Second, "the other replica to serve the session from its cache", func() bool {
		hook.Reset()
		if resp := post(b, session, list); resp.StatusCode != http.StatusOK {
			t.Fatalf("tools/list on the other replica: %s", resp.Status)
		}
		return hook.Count() == 0
	})

	req, err := http.NewRequestWithContext(t.Context(), http.MethodDelete, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Mcp-Session-Id", session)
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	del, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = del.Body.Close()
	ended := time.Now()
	// Well within the 10 s a cache entry lives.
	testwait.Until(t, 5*time.Second, "the other replica to refuse the ended session", func() bool {
		return post(b, session, list).StatusCode == http.StatusNotFound
	})
	t.Logf("the other replica refused the ended session after %v", time.Since(ended).Round(time.Millisecond))
}
