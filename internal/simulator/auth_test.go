package simulator_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
)

// statusBody is a valid status request; an unknown task answers 40004, which
// proves the token was accepted.
var statusBody = map[string]string{"task_id": "bt-0000000000000000"}

// authorized reports whether token is accepted, failing on other answers.
func (e *env) authorized(token string) bool {
	e.t.Helper()
	r := e.call("/api/batch/status", token, statusBody, nil)
	switch r.Code {
	case 40004:
		return true
	case 40003:
		if r.Message != "token expired or invalid" {
			e.t.Errorf("40003 message = %q", r.Message)
		}
		return false
	}
	e.t.Fatalf("status call: code %d %s", r.Code, r.Message)
	return false
}

func TestAuth(t *testing.T) {
	e := setup(t, simulator.Config{Accounts: map[string]string{"svc-mcp": "pw1", "other": "pw2"}, TokenTTL: 90 * time.Minute})
	tests := []struct {
		name     string
		body     any
		wantCode int
		wantMsg  string
	}{
		{"ok", map[string]string{"username": "svc-mcp", "password": "pw1"}, 0, "success"},
		{"second account", map[string]string{"username": "other", "password": "pw2"}, 0, "success"},
		{"wrong password", map[string]string{"username": "svc-mcp", "password": "pw2"}, 40101, "invalid credentials"},
		{"unknown user", map[string]string{"username": "nobody", "password": "pw1"}, 40101, "invalid credentials"},
		{"empty", map[string]string{}, 40101, "invalid credentials"},
		{"malformed", "{", 40001, "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.call("/auth/token", "", tt.body, nil)
			wantCode(t, r, tt.wantCode)
			if !strings.Contains(r.Message, tt.wantMsg) {
				t.Errorf("message = %q, want %q", r.Message, tt.wantMsg)
			}
			if tt.wantCode != 0 {
				return
			}
			var d struct {
				Token     string `json:"token"`
				ExpiresIn int64  `json:"expires_in"`
			}
			if err := json.Unmarshal(r.Data, &d); err != nil {
				t.Fatal(err)
			}
			if len(d.Token) < 32 || d.ExpiresIn != 5400 {
				t.Errorf("token %d chars, expires_in %d; want >= 32 chars and 5400", len(d.Token), d.ExpiresIn)
			}
			if !e.authorized(d.Token) {
				t.Error("fresh token rejected")
			}
		})
	}
	if s := e.stats(); s.AuthCalls != 6 || s.AuthFailures != 3 || s.TokensIssued != 2 {
		t.Errorf("stats = %+v, want 6 auth calls, 3 failures, 2 tokens", s)
	}
}

func TestOneLiveTokenPerAccount(t *testing.T) {
	e := setup(t, simulator.Config{Accounts: map[string]string{"svc-mcp": "sim-password", "other": "pw"}})
	a := e.token()
	r := e.call("/auth/token", "", map[string]string{"username": "other", "password": "pw"}, nil)
	var other struct{ Token string }
	_ = json.Unmarshal(r.Data, &other)
	if !e.authorized(a) {
		t.Fatal("token A rejected before B was issued")
	}
	b := e.token()
	if a == b {
		t.Fatal("two tokens are equal")
	}
	if e.authorized(a) {
		t.Error("token A still accepted after token B was issued for the same account")
	}
	if !e.authorized(b) {
		t.Error("token B rejected")
	}
	if !e.authorized(other.Token) {
		t.Error("the other account's token was ended too")
	}
	if s := e.stats(); s.ExpiredResponses != 1 {
		t.Errorf("expired_responses = %d, want 1", s.ExpiredResponses)
	}
}

func TestTokenTTL(t *testing.T) {
	e := setup(t, simulator.Config{TokenTTL: time.Minute})
	tok := e.token()
	e.clock.Advance(59 * time.Second)
	if !e.authorized(tok) {
		t.Fatal("token rejected before its TTL")
	}
	e.clock.Advance(time.Second)
	if e.authorized(tok) {
		t.Fatal("token accepted at its TTL")
	}
	if !e.authorized(e.token()) {
		t.Fatal("new token rejected")
	}
}

func TestSimExpire(t *testing.T) {
	e := setup(t, simulator.Config{Accounts: map[string]string{"svc-mcp": "sim-password", "other": "pw"}})
	tok := e.token()
	e.call("/auth/token", "", map[string]string{"username": "other", "password": "pw"}, nil)

	resp, err := e.do(http.MethodPost, "/sim/expire", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Expired int }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got.Expired != 2 {
		t.Errorf("expired = %d, want 2", got.Expired)
	}
	if e.authorized(tok) {
		t.Error("token accepted after /sim/expire")
	}
	tok = e.token()
	e.sim.ExpireTokens()
	if e.authorized(tok) {
		t.Error("token accepted after ExpireTokens")
	}
	if s := e.stats(); s.Expiries != 2 {
		t.Errorf("expiries = %d, want 2", s.Expiries)
	}
}

func TestTokenPrefix(t *testing.T) {
	tests := []struct {
		name, prefix, header string
		ok                   bool
	}{
		{"no prefix, bare", "", "%s", true},
		{"no prefix, Bearer sent", "", "Bearer %s", false},
		{"prefix, with it", "Bearer ", "Bearer %s", true},
		{"prefix, other case", "Bearer ", "bearer %s", true},
		{"prefix, bare", "Bearer ", "%s", true},
		{"prefix, another scheme", "Bearer ", "Basic %s", false},
		{"missing", "", "", false},
		{"prefix only", "Bearer ", "Bearer ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, simulator.Config{TokenPrefix: tt.prefix})
			tok := e.token()
			h := strings.ReplaceAll(tt.header, "%s", tok)
			if got := e.authorized(h); got != tt.ok {
				t.Errorf("Authorization %q accepted = %v, want %v", strings.ReplaceAll(tt.header, "%s", "<token>"), got, tt.ok)
			}
		})
	}
}

func TestAuthDown(t *testing.T) {
	e := setup(t, simulator.Config{Faults: simulator.Faults{AuthDown: true}})
	body := map[string]string{"username": "svc-mcp", "password": "sim-password"}
	resp, err := e.do(http.MethodPost, "/auth/token", "", body, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("auth while down: HTTP %d, want 503", resp.StatusCode)
	}
	if err := e.sim.SetFaults(simulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	e.token()
	if s := e.stats(); s.AuthCalls != 2 || s.TokensIssued != 1 || s.FaultsInjected != 1 {
		t.Errorf("stats = %+v, want 2 auth calls, 1 token, 1 fault", s)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestNoSecretsInLogs(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := setup(t, simulator.Config{Logger: logger, Accounts: map[string]string{"svc-mcp": "s3cret-pw"}})
	r := e.call("/auth/token", "", map[string]string{"username": "svc-mcp", "password": "s3cret-pw"}, nil)
	var d struct{ Token string }
	_ = json.Unmarshal(r.Data, &d)
	e.call("/auth/token", "", map[string]string{"username": "svc-mcp", "password": "wrong-pw"}, nil)
	e.authorized(d.Token)
	e.authorized("Bearer " + d.Token)

	out := logs.String()
	if !strings.Contains(out, "operation=auth") || !strings.Contains(out, "operation=batch_status") {
		t.Fatalf("calls not logged:\n%s", out)
	}
	for _, secret := range []string{"s3cret-pw", "wrong-pw", d.Token} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a secret:\n%s", out)
		}
	}
}
