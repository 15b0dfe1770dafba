package simulator_test

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
)

func TestFaultInjection(t *testing.T) {
	tests := []struct {
		name      string
		faults    simulator.Faults
		processed bool // whether the submit was carried out
		check     func(t *testing.T, e *env, resp *http.Response, err error)
	}{
		{"http 5xx", simulator.Faults{HTTP5xx: 1}, false, func(t *testing.T, e *env, resp *http.Response, err error) {
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			switch resp.StatusCode {
			case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			default:
				t.Errorf("HTTP %d, want 502, 503 or 504", resp.StatusCode)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || json.Valid(body) {
				t.Errorf("body %q (%s), want plain text", body, resp.Header.Get("Content-Type"))
			}
		}},
		{"http 429", simulator.Faults{HTTP429: 1}, false, func(t *testing.T, e *env, resp *http.Response, err error) {
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
				t.Errorf("HTTP %d, Retry-After %q; want 429 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		}},
		{"busy", simulator.Faults{Busy: 1}, false, func(t *testing.T, e *env, resp *http.Response, err error) {
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, e.decode(resp, http.StatusOK), 50300)
		}},
		{"rate limited", simulator.Faults{RateLimited: 1}, false, func(t *testing.T, e *env, resp *http.Response, err error) {
			if err != nil {
				t.Fatal(err)
			}
			r := e.decode(resp, http.StatusOK)
			wantCode(t, r, 42900)
			var d struct {
				RetryAfterMS int `json:"retry_after_ms"`
			}
			if err := json.Unmarshal(r.Data, &d); err != nil || d.RetryAfterMS != 500 {
				t.Errorf("data %s, want retry_after_ms 500", r.Data)
			}
		}},
		{"drop", simulator.Faults{Drop: 1}, false, func(t *testing.T, e *env, resp *http.Response, err error) {
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got HTTP %d, want a transport error", resp.StatusCode)
			}
		}},
		{"lost reply", simulator.Faults{LostReply: 1}, true, func(t *testing.T, e *env, resp *http.Response, err error) {
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got HTTP %d, want a transport error", resp.StatusCode)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, simulator.Config{Faults: tt.faults})
			tok := e.token() // faults never touch auth
			resp, err := e.do(http.MethodPost, "/api/batch/submit", tok, submitBody("f"), map[string]string{"Idempotency-Key": "k"})
			tt.check(t, e, resp, err)

			s := e.stats() // nor /sim
			want := int64(0)
			if tt.processed {
				want = 1
			}
			if s.BatchSubmissions != want || s.FaultsInjected != 1 || s.Calls["batch_submit"] != 1 {
				t.Errorf("stats = %+v; want %d submissions, 1 fault, 1 submit call", s, want)
			}

			// Once the faults stop, a repeat with the same key submits at most once.
			if err := e.sim.SetFaults(simulator.Faults{}); err != nil {
				t.Fatal(err)
			}
			e.submit(tok, submitBody("f"), "k")
			s = e.stats()
			if s.BatchSubmissions != 1 || s.IdempotentReplays != want {
				t.Errorf("after the repeat: %d submissions, %d replays; want 1 and %d", s.BatchSubmissions, s.IdempotentReplays, want)
			}
		})
	}
}

func TestFaultRatesAreSeeded(t *testing.T) {
	run := func() []int {
		e := setup(t, simulator.Config{Seed: 42, Faults: simulator.Faults{Busy: 0.5}})
		tok := e.token()
		var codes []int
		for range 40 {
			codes = append(codes, e.call("/api/batch/status", tok, statusBody, nil).Code)
		}
		return codes
	}
	a, b := run(), run()
	busy := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different faults:\n%v\n%v", a, b)
		}
		if a[i] == 50300 {
			busy++
		}
	}
	if busy == 0 || busy == len(a) {
		t.Errorf("%d of %d calls busy at rate 0.5", busy, len(a))
	}
}

func TestSetFaults(t *testing.T) {
	e := setup(t, simulator.Config{})
	tests := []struct {
		name string
		f    simulator.Faults
		ok   bool
	}{
		{"none", simulator.Faults{}, true},
		{"all at 1", simulator.Faults{HTTP5xx: 1, HTTP429: 1, Busy: 1, RateLimited: 1, Drop: 1, LostReply: 1, AuthDown: true}, true},
		{"5xx above 1", simulator.Faults{HTTP5xx: 1.01}, false},
		{"429 negative", simulator.Faults{HTTP429: -1}, false},
		{"rate limited NaN", simulator.Faults{RateLimited: math.NaN()}, false},
		{"lost reply inf", simulator.Faults{LostReply: math.Inf(1)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.sim.Faults()
			err := e.sim.SetFaults(tt.f)
			if (err == nil) != tt.ok {
				t.Fatalf("SetFaults(%+v) error = %v, want ok %v", tt.f, err, tt.ok)
			}
			got := e.sim.Faults()
			if tt.ok && got != tt.f {
				t.Errorf("Faults() = %+v, want %+v", got, tt.f)
			}
			if !tt.ok && got != before {
				t.Errorf("a rejected SetFaults changed the faults to %+v", got)
			}
		})
	}
}

func TestSimFaultsEndpoint(t *testing.T) {
	e := setup(t, simulator.Config{Faults: simulator.Faults{Busy: 0.25}})
	type control struct {
		simulator.Faults
		LatencyMS     int64 `json:"latency_ms"`
		AuthLatencyMS int64 `json:"auth_latency_ms"`
	}
	read := func(resp *http.Response, err error) (control, int) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var c control
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
				t.Fatal(err)
			}
		}
		return c, resp.StatusCode
	}
	if c, _ := read(e.do(http.MethodGet, "/sim/faults", "", nil, nil)); c.Busy != 0.25 || c.AuthDown || c.LatencyMS != 0 {
		t.Errorf("GET = %+v", c)
	}

	tests := []struct {
		name, body string
		status     int
		want       control
	}{
		{"flip auth_down", `{"auth_down": true}`, 200, control{Faults: simulator.Faults{Busy: 0.25, AuthDown: true}}},
		{"latencies", `{"latency_ms": 15, "auth_latency_ms": 7}`, 200,
			control{Faults: simulator.Faults{Busy: 0.25, AuthDown: true}, LatencyMS: 15, AuthLatencyMS: 7}},
		{"rates", `{"busy": 0, "drop": 0.5, "auth_down": false}`, 200,
			control{Faults: simulator.Faults{Drop: 0.5}, LatencyMS: 15, AuthLatencyMS: 7}},
		{"bad rate", `{"busy": 2}`, 400, control{}},
		{"negative latency", `{"latency_ms": -1}`, 400, control{}},
		{"unknown field", `{"bussy": 1}`, 400, control{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, status := read(e.do(http.MethodPost, "/sim/faults", "", tt.body, nil))
			if status != tt.status {
				t.Fatalf("HTTP %d, want %d", status, tt.status)
			}
			if status == 200 && c != tt.want {
				t.Errorf("answer %+v, want %+v", c, tt.want)
			}
		})
	}
	want := simulator.Faults{Drop: 0.5}
	if got := e.sim.Faults(); got != want {
		t.Errorf("after the rejected changes Faults() = %+v, want %+v", got, want)
	}

	t.Run("auth_down at runtime", func(t *testing.T) {
		read(e.do(http.MethodPost, "/sim/faults", "", `{"auth_down": true, "drop": 0}`, nil))
		resp, err := e.do(http.MethodPost, "/auth/token", "", map[string]string{"username": "svc-mcp", "password": "sim-password"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("auth while down: HTTP %d, want 503", resp.StatusCode)
		}
		read(e.do(http.MethodPost, "/sim/faults", "", `{"auth_down": false}`, nil))
		e.token()
	})
}
