package mcp_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hibiken/asynq"
	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpjobs/mcpjobs/internal/oauth"
	"github.com/mcpjobs/mcpjobs/internal/oauth/oauthtest"
	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/mcp"
)

type oauthEnv struct {
	*env
	base string // http://host:port
	idp  *oauthtest.Provider
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// setupOAuth serves MCP over HTTP on a real Redis with the test identity
// provider, beside static tokens.
func setupOAuth(t *testing.T, tokens string, scopes ...string) *oauthEnv {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	jc := store.NewClient(rdb, store.Options{})
	t.Cleanup(func() { _ = jc.Close() })
	tok, err := mcp.ParseTokens(tokens)
	if err != nil {
		t.Fatal(err)
	}
	idp := oauthtest.Start(t)
	hs := httptest.NewUnstartedServer(nil)
	base := "http://" + hs.Listener.Addr().String()
	v, err := oauth.New(oauth.Config{Issuer: idp.URL, Audience: base + "/mcp", RequiredScopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv, err := mcp.New(mcp.Options{
		Jobs: jc, Tokens: tok,
		OAuth:  &mcp.OAuth{Verifier: v, Resource: base + "/mcp"},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv.HTTPHandler()
	hs.Start()
	t.Cleanup(hs.Close)
	return &oauthEnv{env: &env{rdb: rdb, url: base + "/mcp"}, base: base, idp: idp, logs: logs}
}

// Two people signed in with the identity provider, through mcp-go's
// client, each see only their own jobs; a static token's identity of the
// same name ("alice") is a third owner.
func TestOAuthTwoUsersSeeOnlyTheirOwnJobs(t *testing.T) {
	e := setupOAuth(t, "alice:static-secret")
	clients := map[string]*mcpclient.Client{
		"oidc:alice": e.client(t, e.idp.Token(t, "alice", e.url)),
		"oidc:bob":   e.client(t, e.idp.Token(t, "bob", e.url)),
		"alice":      e.client(t, "static-secret"),
	}
	args := map[string]any{"coverage_id": "dem_30m", "bbox": []any{116.0, 39.8, 116.1, 39.9}, "wait_seconds": 0}
	ids := map[string]string{}
	for owner, c := range clients {
		res := text(call(t, c, "coverage_aspect_analysis", args))
		var v struct {
			JobID string `json:"job_id"`
		}
		if err := json.Unmarshal([]byte(res), &v); err != nil || v.JobID == "" {
			t.Fatalf("%s: not a job view: %s", owner, res)
		}
		ids[owner] = v.JobID
	}
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	for owner, id := range ids {
		info, err := insp.GetTaskInfo(jobs.QueueInteractive, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Headers["owner"]; got != owner {
			t.Errorf("job %s owned by %q, want %q", id, got, owner)
		}
	}
	for caller, c := range clients {
		list := text(call(t, c, "list_jobs", map[string]any{}))
		for owner, id := range ids {
			if got := strings.Contains(list, id); got != (owner == caller) {
				t.Errorf("%s's list_jobs shows %s's job: %v (%s)", caller, owner, got, list)
			}
			res := call(t, c, "get_job", map[string]any{"job_id": id, "wait_seconds": 0})
			if res.IsError != (owner != caller) {
				t.Errorf("%s's get_job of %s's job: isError=%v (%s)", caller, owner, res.IsError, text(res))
			}
		}
	}
	// Cancelling another's job is refused and leaves it queued.
	if res := call(t, clients["oidc:bob"], "cancel_job", map[string]any{"job_id": ids["oidc:alice"]}); !res.IsError {
		t.Errorf("bob cancelled alice's job: %s", text(res))
	}
	if n := queued(t, e.rdb); n != 3 {
		t.Errorf("%d jobs queued, want 3", n)
	}
}

// post sends an MCP initialize request with auth as Authorization.
func post(t *testing.T, url, auth string) *http.Response {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// A client without a token learns from the 401 where the metadata is, and
// from the metadata which identity provider to sign in with (RFC 9728).
func TestOAuthDiscovery(t *testing.T) {
	e := setupOAuth(t, "", "mcp")
	resp := post(t, e.url, "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
	metadata := e.base + "/.well-known/oauth-protected-resource/mcp"
	if got, want := resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+metadata+`"`; !strings.HasPrefix(got, "Bearer ") || !strings.Contains(got, want) || strings.Contains(got, "error=") {
		t.Errorf("WWW-Authenticate %q, want Bearer with %s and no error", got, want)
	}
	for _, u := range []string{metadata, e.base + "/.well-known/oauth-protected-resource"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
			ScopesSupported      []string `json:"scopes_supported"`
		}
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
		}
		if doc.Resource != e.url || len(doc.AuthorizationServers) != 1 || doc.AuthorizationServers[0] != e.idp.URL || strings.Join(doc.ScopesSupported, " ") != "mcp" {
			t.Errorf("GET %s: %+v, want resource %s, authorization server %s, scope mcp", u, doc, e.url, e.idp.URL)
		}
	}
}

// Each refusal answers as RFC 6750 says, and is logged by fingerprint,
// never in full.
func TestOAuthRefusals(t *testing.T) {
	e := setupOAuth(t, "svc:static-secret", "mcp")
	rk := e.idp.RSAKey()
	claims := func(edit func(map[string]any)) map[string]any {
		c := e.idp.Claims("alice", e.url)
		edit(c)
		return c
	}
	tests := []struct {
		name, token string
		status      int
		challenge   string
	}{
		{"valid", oauthtest.Sign(t, rk, claims(func(map[string]any) {})), http.StatusOK, ""},
		{"valid ES256", oauthtest.Sign(t, e.idp.ECKey(), claims(func(map[string]any) {})), http.StatusOK, ""},
		{"static token", "static-secret", http.StatusOK, ""},
		{"wrong audience", oauthtest.Sign(t, rk, claims(func(c map[string]any) { c["aud"] = "https://elsewhere.example.com/mcp" })), http.StatusUnauthorized, `error="invalid_token"`},
		{"wrong issuer", oauthtest.Sign(t, rk, claims(func(c map[string]any) { c["iss"] = "https://evil.example.com" })), http.StatusUnauthorized, `error="invalid_token"`},
		{"alg none", oauthtest.Unsigned(t, rk.ID, claims(func(map[string]any) {})), http.StatusUnauthorized, `error="invalid_token"`},
		{"expired", oauthtest.Sign(t, rk, claims(func(c map[string]any) { c["exp"] = c["iat"].(int64) - 3600 })), http.StatusUnauthorized, `error="invalid_token"`},
		{"missing scope", oauthtest.Sign(t, rk, claims(func(c map[string]any) { c["scope"] = "openid" })), http.StatusForbidden, `error="insufficient_scope"`},
		{"unknown static token", "not-a-token", http.StatusUnauthorized, `error="invalid_token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, e.url, "Bearer "+tt.token)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			got := resp.Header.Get("WWW-Authenticate")
			if tt.challenge == "" {
				return
			}
			if !strings.Contains(got, tt.challenge) || !strings.Contains(got, `resource_metadata="`+e.base+`/.well-known/oauth-protected-resource/mcp"`) {
				t.Errorf("WWW-Authenticate %q, want %s and resource_metadata", got, tt.challenge)
			}
			if tt.status == http.StatusForbidden && !strings.Contains(got, `scope="mcp"`) {
				t.Errorf("WWW-Authenticate %q does not name the scope", got)
			}
			logs := e.logs.String()
			if !strings.Contains(logs, oauth.Fingerprint(tt.token)) {
				t.Errorf("the refusal is not logged by fingerprint %s: %s", oauth.Fingerprint(tt.token), logs)
			}
			if strings.Contains(logs, tt.token) {
				t.Errorf("the log shows the token")
			}
		})
	}
}

// While the identity provider cannot be reached, tokens cannot be checked:
// 503 with Retry-After, not a 401 that would make clients sign in again.
func TestOAuthProviderDown(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	jc := store.NewClient(rdb, store.Options{})
	t.Cleanup(func() { _ = jc.Close() })
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	v, err := oauth.New(oauth.Config{Issuer: down.URL, Audience: "http://127.0.0.1/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := mcp.New(mcp.Options{Jobs: jc, OAuth: &mcp.OAuth{Verifier: v, Resource: "http://127.0.0.1/mcp"}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.HTTPHandler())
	t.Cleanup(hs.Close)
	idp := oauthtest.Start(t)
	resp := post(t, hs.URL+"/mcp", "Bearer "+idp.Token(t, "alice", "http://127.0.0.1/mcp"))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("status %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestOAuthOptionsChecked(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	jc := store.NewClient(rdb, store.Options{})
	t.Cleanup(func() { _ = jc.Close() })
	v, err := oauth.New(oauth.Config{Issuer: "https://sso.example.com/realms/corp", Audience: "https://mcp.example.com/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []*mcp.OAuth{{Resource: "https://mcp.example.com/mcp"}, {Verifier: v}, {Verifier: v, Resource: "/mcp"}} {
		if _, err := mcp.New(mcp.Options{Jobs: jc, OAuth: o}); err == nil {
			t.Errorf("New accepted OAuth %+v", *o)
		}
	}
}

// MCP tasks belong to the signed-in caller too: bob cannot read alice's.
func TestOAuthTasksBelongToTheCaller(t *testing.T) {
	e := setupOAuth(t, "")
	taskClient := func(token string) *mcpclient.Client {
		c, err := mcpclient.NewStreamableHttpClient(e.url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if err := c.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Initialize(t.Context(), mcpgo.InitializeRequest{Params: mcpgo.InitializeParams{
			ProtocolVersion: mcpgo.ProtocolVersion20251125,
			ClientInfo:      mcpgo.Implementation{Name: "oauth-tasks", Version: "1"},
			Capabilities:    mcpgo.ClientCapabilities{Tasks: &mcpgo.TasksCapability{List: &struct{}{}, Cancel: &struct{}{}}},
		}}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice := taskClient(e.idp.Token(t, "alice", e.url))
	bob := taskClient(e.idp.Token(t, "bob", e.url))
	res, err := alice.GetTransport().SendRequest(t.Context(), transport.JSONRPCRequest{JSONRPC: "2.0", ID: mcpgo.NewRequestId(1), Method: "tools/call",
		Params: map[string]any{"name": "coverage_aspect_analysis", "arguments": map[string]any{"coverage_id": "dem_30m", "bbox": []float64{116.0, 39.8, 116.1, 39.9}}, "task": map[string]any{"ttl": 60000}}})
	if err != nil || res.Error != nil {
		t.Fatalf("tools/call as a task: %v %+v", err, res)
	}
	var created struct {
		Task mcpgo.Task `json:"task"`
	}
	if err := json.Unmarshal(res.Result, &created); err != nil || created.Task.TaskId == "" {
		t.Fatalf("not a CreateTaskResult: %s", res.Result)
	}
	id := created.Task.TaskId
	if got, err := alice.GetTask(t.Context(), mcpgo.GetTaskRequest{Params: mcpgo.GetTaskParams{TaskId: id}}); err != nil || got.TaskId != id {
		t.Errorf("alice's tasks/get: %+v, %v", got, err)
	}
	if _, err := bob.GetTask(t.Context(), mcpgo.GetTaskRequest{Params: mcpgo.GetTaskParams{TaskId: id}}); err == nil || !strings.Contains(err.Error(), "task not found") {
		t.Errorf("bob's tasks/get of alice's task: %v", err)
	}
	if list, err := bob.ListTasks(t.Context(), mcpgo.ListTasksRequest{}); err != nil || len(list.Tasks) != 0 {
		t.Errorf("bob's tasks/list: %+v, %v", list, err)
	}
	info, err := asynq.NewInspectorFromRedisClient(e.rdb).GetTaskInfo(jobs.QueueInteractive, id)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Headers["owner"]; got != "oidc:alice" {
		t.Errorf("task owned by %q, want oidc:alice", got)
	}
}
