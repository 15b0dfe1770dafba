package simulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a simulator behind a real HTTP server.
type env struct {
	t      *testing.T
	sim    *simulator.Simulator
	srv    *httptest.Server
	clock  *fakeClock
	client *http.Client
}

// setup starts a simulator for cfg; a nil cfg.Now becomes a fake clock.
func setup(t *testing.T, cfg simulator.Config) *env {
	t.Helper()
	e := &env{t: t}
	if cfg.Now == nil {
		e.clock = newFakeClock()
		cfg.Now = e.clock.Now
	}
	sim, err := simulator.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.sim = sim
	e.srv = httptest.NewServer(sim)
	// No keep-alive: a reused connection would let net/http replay a request
	// that carries an Idempotency-Key by itself after a closed connection.
	tr := &http.Transport{DisableKeepAlives: true}
	e.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		e.srv.Close()
	})
	return e
}

// reply is a decoded envelope.
type reply struct {
	Code      int             `json:"code"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
	RequestID string          `json:"request_id"`
}

// do sends a request; body is sent as is when []byte or string, else as JSON.
func (e *env) do(method, path, token string, body any, hdr map[string]string) (*http.Response, error) {
	e.t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			e.t.Fatalf("marshal body: %v", err)
		}
	}
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(b))
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return e.client.Do(req)
}

// call POSTs to path and decodes the envelope, which must come with HTTP 200.
func (e *env) call(path, token string, body any, hdr map[string]string) reply {
	e.t.Helper()
	resp, err := e.do(http.MethodPost, path, token, body, hdr)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	return e.decode(resp, http.StatusOK)
}

// decode reads an envelope with the given HTTP status.
func (e *env) decode(resp *http.Response, status int) reply {
	e.t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	if resp.StatusCode != status {
		e.t.Fatalf("HTTP status = %d, want %d; body %s", resp.StatusCode, status, raw)
	}
	var r reply
	if err := json.Unmarshal(raw, &r); err != nil {
		e.t.Fatalf("decode envelope %s: %v", raw, err)
	}
	if !strings.HasPrefix(r.RequestID, "r-") {
		e.t.Errorf("request_id = %q, want r-...", r.RequestID)
	}
	return r
}

// token gets a token for the default account.
func (e *env) token() string {
	e.t.Helper()
	r := e.call("/auth/token", "", map[string]string{"username": "svc-mcp", "password": "sim-password"}, nil)
	if r.Code != 0 {
		e.t.Fatalf("auth: code %d %s", r.Code, r.Message)
	}
	var d struct {
		Token     string `json:"token"`
		ExpiresIn int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(r.Data, &d); err != nil || d.Token == "" {
		e.t.Fatalf("auth data %s: %v", r.Data, err)
	}
	return d.Token
}

// stats reads GET /sim/stats.
func (e *env) stats() simulator.Stats {
	e.t.Helper()
	resp, err := e.do(http.MethodGet, "/sim/stats", "", nil, nil)
	if err != nil {
		e.t.Fatalf("GET /sim/stats: %v", err)
	}
	defer resp.Body.Close()
	var s simulator.Stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		e.t.Fatalf("decode stats: %v", err)
	}
	return s
}

func wantCode(t *testing.T, r reply, code int) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("code = %d (%s), want %d", r.Code, r.Message, code)
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		cfg     simulator.Config
		wantErr string
	}{
		{"zero config", simulator.Config{}, ""},
		{"empty username", simulator.Config{Accounts: map[string]string{"": "x"}}, "empty username"},
		{"empty password", simulator.Config{Accounts: map[string]string{"u": ""}}, "empty password"},
		{"negative ttl", simulator.Config{TokenTTL: -time.Second}, "token TTL"},
		{"negative latency", simulator.Config{Latency: -time.Second}, "latency"},
		{"negative batch duration", simulator.Config{BatchDuration: -time.Second}, "batch duration"},
		{"fault above 1", simulator.Config{Faults: simulator.Faults{Drop: 1.5}}, "drop"},
		{"fault below 0", simulator.Config{Faults: simulator.Faults{Busy: -0.1}}, "busy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := simulator.New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	e := setup(t, simulator.Config{})
	tests := []struct {
		name, method, path string
		status, code       int
	}{
		{"unknown path", http.MethodPost, "/api/nope", http.StatusNotFound, 40004},
		{"root", http.MethodGet, "/", http.StatusNotFound, 40004},
		{"GET on api", http.MethodGet, "/api/batch/status", http.StatusMethodNotAllowed, 40001},
		{"GET on auth", http.MethodGet, "/auth/token", http.StatusMethodNotAllowed, 40001},
		{"POST on stats", http.MethodPost, "/sim/stats", http.StatusMethodNotAllowed, 40001},
		{"GET on expire", http.MethodGet, "/sim/expire", http.StatusMethodNotAllowed, 40001},
		{"DELETE on faults", http.MethodDelete, "/sim/faults", http.StatusMethodNotAllowed, 40001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.do(tt.method, tt.path, "", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, e.decode(resp, tt.status), tt.code)
		})
	}
}

func TestRequestBody(t *testing.T) {
	e := setup(t, simulator.Config{})
	tok := e.token()
	big := `{"task_id": "` + strings.Repeat("x", 5<<20) + `"}`
	tests := []struct {
		name, body, wantMsg string
	}{
		{"too big", big, "larger than"},
		{"empty", "", "empty"},
		{"malformed", `{"task_id": `, "invalid JSON"},
		{"unknown field", `{"task_id": "bt-1", "extra": 1}`, "unknown field"},
		{"wrong type", `{"task_id": 5}`, "invalid JSON"},
		{"trailing data", `{"task_id": "bt-1"} {}`, "after the JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.call("/api/batch/status", tok, tt.body, nil)
			wantCode(t, r, 40001)
			if !strings.Contains(r.Message, tt.wantMsg) {
				t.Errorf("message = %q, want it to mention %q", r.Message, tt.wantMsg)
			}
		})
	}
}

func TestComputeEndpoints(t *testing.T) {
	e := setup(t, simulator.Config{})
	tok := e.token()
	tests := []struct {
		name, path string
		body       any
		check      func(t *testing.T, data json.RawMessage)
	}{
		{"aspect", "/api/coverage/aspect",
			map[string]any{"coverage_id": "dem_30m", "bbox": []float64{116.0, 39.8, 116.2, 40.0}, "scale_m": 30},
			func(t *testing.T, data json.RawMessage) {
				var d simulator.AspectResult
				if err := json.Unmarshal(data, &d); err != nil || d.CellCount <= 0 {
					t.Errorf("aspect data %s: err %v, want cell_count > 0", data, err)
				}
			}},
		{"bigquery", "/api/bigquery/query",
			map[string]any{"sql": "SELECT region, area_km2 FROM landcover WHERE class = 'forest' LIMIT 10", "max_rows": 1000},
			func(t *testing.T, data json.RawMessage) {
				var d simulator.QueryResult
				if err := json.Unmarshal(data, &d); err != nil || len(d.Columns) == 0 {
					t.Errorf("query data %s: err %v, want columns", data, err)
				}
			}},
		{"dag", "/api/dag/compile",
			map[string]any{"code": "var dem = Image('dem_30m'); var a = dem.aspect(); Export(a, 'out')", "language": "javascript"},
			func(t *testing.T, data json.RawMessage) {
				var d simulator.DAGResult
				if err := json.Unmarshal(data, &d); err != nil || d.NodeCount == 0 {
					t.Errorf("dag data %s: err %v, want nodes", data, err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.call(tt.path, tok, tt.body, nil)
			wantCode(t, r, 0)
			if r.Message != "success" {
				t.Errorf("message = %q, want success", r.Message)
			}
			tt.check(t, r.Data)
			// Without a token the same call is 40003.
			wantCode(t, e.call(tt.path, "", tt.body, nil), 40003)
		})
	}
}

func TestStatsCounters(t *testing.T) {
	e := setup(t, simulator.Config{})
	tok := e.token()
	e.call("/auth/token", "", map[string]string{"username": "svc-mcp", "password": "wrong"}, nil)
	sub := map[string]any{"name": "n", "code": "c", "output": map[string]string{"format": "CSV", "path": "/o.csv"}}
	hdr := map[string]string{"Idempotency-Key": "k1"}
	r := e.call("/api/batch/submit", tok, sub, hdr)
	wantCode(t, r, 0)
	e.call("/api/batch/submit", tok, sub, hdr)
	var id simulator.BatchSubmitResult
	_ = json.Unmarshal(r.Data, &id)
	e.call("/api/batch/status", tok, map[string]string{"task_id": id.TaskID}, nil)
	e.call("/api/batch/cancel", tok, map[string]string{"task_id": id.TaskID}, nil)
	e.call("/api/batch/status", "bad-token", map[string]string{"task_id": id.TaskID}, nil)
	e.sim.ExpireTokens()

	got := e.stats()
	want := simulator.Stats{
		AuthCalls: 2, AuthFailures: 1, TokensIssued: 1, ExpiredResponses: 1,
		BatchSubmissions: 1, IdempotentReplays: 1, Expiries: 1,
		Calls: map[string]int64{"auth": 2, "aspect": 0, "bigquery": 0, "dag": 0,
			"batch_submit": 2, "batch_status": 2, "batch_cancel": 1},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stats =\n%+v, want\n%+v", got, want)
	}
	if fmt.Sprint(e.sim.Stats()) != fmt.Sprint(got) {
		t.Errorf("Stats() = %+v, /sim/stats = %+v", e.sim.Stats(), got)
	}
}

func TestLatency(t *testing.T) {
	body := `{"task_id": "bt-0000000000000000"}`
	t.Run("api call waits", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			sim, err := simulator.New(simulator.Config{Latency: 3 * time.Second, AuthLatency: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			rec := httptest.NewRecorder()
			sim.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/batch/status", strings.NewReader(body)))
			if d := time.Since(start); d != 3*time.Second {
				t.Errorf("api call took %v, want 3s", d)
			}
			start = time.Now()
			sim.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/auth/token", strings.NewReader(`{}`)))
			if d := time.Since(start); d != 5*time.Second {
				t.Errorf("auth call took %v, want 5s", d)
			}
			sim.SetLatency(0, 0)
			start = time.Now()
			sim.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/api/batch/status", strings.NewReader(body)))
			if d := time.Since(start); d != 0 {
				t.Errorf("after SetLatency(0, 0) the call took %v", d)
			}
		})
	})
	t.Run("cancelled request stops waiting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			sim, err := simulator.New(simulator.Config{Latency: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/batch/status", strings.NewReader(body))
			rec := httptest.NewRecorder()
			sim.ServeHTTP(rec, req)
			if d := time.Since(start); d != time.Second {
				t.Errorf("call took %v, want 1s (the request's deadline)", d)
			}
			if rec.Body.Len() != 0 {
				t.Errorf("a cancelled call answered %q", rec.Body)
			}
		})
	})
}

// TestConcurrentUse exercises every lock under -race.
func TestConcurrentUse(t *testing.T) {
	e := setup(t, simulator.Config{Faults: simulator.Faults{Busy: 0.2}})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			tok := e.token()
			for j := range 5 {
				sub := map[string]any{"name": fmt.Sprintf("t-%d-%d", i, j), "code": "c",
					"output": map[string]string{"format": "COG", "path": "/o.tif"}}
				r := e.call("/api/batch/submit", tok, sub, map[string]string{"Idempotency-Key": fmt.Sprint(i, j)})
				if r.Code == 0 {
					var id simulator.BatchSubmitResult
					_ = json.Unmarshal(r.Data, &id)
					e.call("/api/batch/status", tok, map[string]string{"task_id": id.TaskID}, nil)
				}
				e.clock.Advance(time.Second)
				_ = e.sim.Stats()
				_ = e.sim.Faults()
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			e.sim.ExpireTokens()
			_ = e.sim.SetFaults(simulator.Faults{Busy: 0.1})
		}
	})
	wg.Wait()
}

func TestRegisterFlags(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		var cfg simulator.Config
		fs := flag.NewFlagSet("sim", flag.ContinueOnError)
		simulator.RegisterFlags(fs, &cfg)
		if err := fs.Parse(nil); err != nil {
			t.Fatal(err)
		}
		if cfg.TokenTTL != 2*time.Hour || cfg.BatchDuration != 30*time.Second {
			t.Errorf("defaults: ttl %v, batch %v", cfg.TokenTTL, cfg.BatchDuration)
		}
		for _, name := range []string{"token-ttl", "token-prefix", "latency", "auth-latency", "batch-duration",
			"fault-5xx", "fault-429", "fault-busy", "fault-rate-limited", "fault-drop", "fault-lost-reply",
			"auth-down", "username", "password"} {
			f := fs.Lookup(name)
			if f == nil || f.Usage == "" {
				t.Errorf("flag --%s missing or without help", name)
			}
		}
		if got := fs.Lookup("username").DefValue; got != "svc-mcp" {
			t.Errorf("--username default = %q", got)
		}
	})
	t.Run("set", func(t *testing.T) {
		var cfg simulator.Config
		fs := flag.NewFlagSet("sim", flag.ContinueOnError)
		simulator.RegisterFlags(fs, &cfg)
		err := fs.Parse([]string{"--token-ttl=5m", "--token-prefix=Bearer ", "--latency=10ms", "--auth-latency=20ms",
			"--batch-duration=1m", "--fault-5xx=0.1", "--fault-429=0.2", "--fault-busy=0.3", "--fault-rate-limited=0.4",
			"--fault-drop=0.5", "--fault-lost-reply=0.6", "--auth-down", "--password=pw"})
		if err != nil {
			t.Fatal(err)
		}
		want := simulator.Faults{HTTP5xx: 0.1, HTTP429: 0.2, Busy: 0.3, RateLimited: 0.4, Drop: 0.5, LostReply: 0.6, AuthDown: true}
		if cfg.Faults != want {
			t.Errorf("faults = %+v, want %+v", cfg.Faults, want)
		}
		if cfg.TokenTTL != 5*time.Minute || cfg.TokenPrefix != "Bearer " || cfg.Latency != 10*time.Millisecond ||
			cfg.AuthLatency != 20*time.Millisecond || cfg.BatchDuration != time.Minute {
			t.Errorf("cfg = %+v", cfg)
		}
		if len(cfg.Accounts) != 1 || cfg.Accounts["svc-mcp"] != "pw" {
			t.Errorf("accounts = %v, want svc-mcp with the new password", cfg.Accounts)
		}
		if _, err := simulator.New(cfg); err != nil {
			t.Errorf("New: %v", err)
		}
	})
	t.Run("bad probability", func(t *testing.T) {
		var cfg simulator.Config
		fs := flag.NewFlagSet("sim", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		simulator.RegisterFlags(fs, &cfg)
		if err := fs.Parse([]string{"--fault-drop=2"}); err == nil {
			t.Error("--fault-drop=2 accepted")
		}
	})
}

// ExampleNew runs the simulator behind an HTTP server and gets a token.
func ExampleNew() {
	sim, err := simulator.New(simulator.Config{TokenTTL: time.Hour})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/auth/token", "application/json",
		strings.NewReader(`{"username": "svc-mcp", "password": "sim-password"}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var env struct {
		Code int `json:"code"`
		Data struct {
			ExpiresIn int `json:"expires_in"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil && !errors.Is(err, io.EOF) {
		panic(err)
	}
	fmt.Println(env.Code, env.Data.ExpiresIn)
	// Output: 0 3600
}
