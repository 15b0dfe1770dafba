package intranet_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// aspectBody is the contract's example request.
var aspectBody = json.RawMessage(`{"coverage_id": "dem_30m", "bbox": [116.0, 39.8, 116.2, 40.0], "scale_m": 30}`)

// setupSim runs the simulator and returns it with a client of it.
func setupSim(t *testing.T, password string) (*simulator.Simulator, *intranet.Client, *syncBuffer) {
	t.Helper()
	sim, err := simulator.New(simulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	logs := &syncBuffer{}
	c, err := intranet.New(intranet.Config{
		BaseURL:  srv.URL,
		Username: simulator.DefaultUsername,
		Password: password,
		Timeout:  5 * time.Second,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return sim, c, logs
}

func TestSimulatorAspect(t *testing.T) {
	_, c, logs := setupSim(t, simulator.DefaultPassword)
	tok, err := c.Authenticate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if tok.Value == "" || tok.ExpiresAt.Sub(tok.IssuedAt) != simulator.DefaultTokenTTL {
		t.Fatalf("token %#v", tok)
	}
	resp, err := c.Call(t.Context(), intranet.OpAspect, tok.Value, aspectBody)
	if err != nil {
		t.Fatal(err)
	}
	var data simulator.AspectResult
	if err := json.Unmarshal(resp.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.CoverageID != "dem_30m" || data.CellCount <= 0 || len(data.Histogram) == 0 || resp.RequestID == "" {
		t.Errorf("data = %s, request_id %q", resp.Data, resp.RequestID)
	}
	out := logs.String()
	if strings.Contains(out, tok.Value) || strings.Contains(out, simulator.DefaultPassword) {
		t.Errorf("log holds a secret:\n%s", out)
	}
}

func TestSimulatorAuthErrors(t *testing.T) {
	t.Run("wrong password", func(t *testing.T) {
		_, c, logs := setupSim(t, secretPassword)
		_, err := c.Authenticate(t.Context())
		if intranet.ClassOf(err) != intranet.ClassInvalidCredentials || !errors.Is(err, intranet.ErrInvalidCredentials) {
			t.Fatalf("err = %v, want invalid credentials", err)
		}
		out := logs.String()
		assertNoSecrets(t, "log", out+err.Error())
		if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "username="+simulator.DefaultUsername) {
			t.Errorf("no ERROR record with the username:\n%s", out)
		}
	})
	t.Run("auth down", func(t *testing.T) {
		sim, c, _ := setupSim(t, simulator.DefaultPassword)
		if err := sim.SetFaults(simulator.Faults{AuthDown: true}); err != nil {
			t.Fatal(err)
		}
		_, err := c.Authenticate(t.Context())
		if intranet.ClassOf(err) != intranet.ClassTransient {
			t.Fatalf("err = %v, want transient", err)
		}
	})
	t.Run("expired token", func(t *testing.T) {
		sim, c, _ := setupSim(t, simulator.DefaultPassword)
		tok, err := c.Authenticate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		sim.ExpireTokens()
		_, err = c.Call(t.Context(), intranet.OpAspect, tok.Value, aspectBody)
		if intranet.ClassOf(err) != intranet.ClassTokenExpired || !errors.Is(err, intranet.ErrTokenExpired) {
			t.Fatalf("err = %v, want token expired", err)
		}
		if strings.Contains(err.Error(), tok.Value) {
			t.Errorf("err holds the token: %v", err)
		}
	})
	t.Run("superseded token", func(t *testing.T) {
		_, c, _ := setupSim(t, simulator.DefaultPassword)
		old, err := c.Authenticate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authenticate(t.Context()); err != nil {
			t.Fatal(err)
		}
		_, err = c.Call(t.Context(), intranet.OpAspect, old.Value, aspectBody)
		if intranet.ClassOf(err) != intranet.ClassTokenExpired {
			t.Fatalf("err = %v, want token expired", err)
		}
	})
}

func TestSimulatorFaults(t *testing.T) {
	tests := []struct {
		name       string
		faults     simulator.Faults
		class      intranet.Class
		retryAfter time.Duration
	}{
		{"http 5xx", simulator.Faults{HTTP5xx: 1}, intranet.ClassTransient, 0},
		{"http 429", simulator.Faults{HTTP429: 1}, intranet.ClassRateLimited, time.Second},
		{"busy", simulator.Faults{Busy: 1}, intranet.ClassTransient, 0},
		{"rate limited", simulator.Faults{RateLimited: 1}, intranet.ClassRateLimited, 500 * time.Millisecond},
		{"drop", simulator.Faults{Drop: 1}, intranet.ClassUnknownOutcome, 0},
		{"lost reply", simulator.Faults{LostReply: 1}, intranet.ClassUnknownOutcome, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, c, _ := setupSim(t, simulator.DefaultPassword)
			tok, err := c.Authenticate(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if err := sim.SetFaults(tt.faults); err != nil {
				t.Fatal(err)
			}
			_, err = c.Call(t.Context(), intranet.OpAspect, tok.Value, aspectBody)
			var e *intranet.Error
			if !errors.As(err, &e) || e.Class != tt.class || !intranet.Retryable(err) {
				t.Fatalf("err = %v (class %v), want class %v", err, intranet.ClassOf(err), tt.class)
			}
			if e.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %s, want %s", e.RetryAfter, tt.retryAfter)
			}
		})
	}
}

// A batch submit whose reply is lost is repeated with the same key and
// starts nothing new.
func TestSimulatorLostSubmitReplayed(t *testing.T) {
	sim, c, _ := setupSim(t, simulator.DefaultPassword)
	tok, err := c.Authenticate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	body := json.RawMessage(`{"name": "aspect-beijing-2026", "code": "var a = 1", "output": {"format": "GeoTIFF", "path": "/data/out/aspect.tif"}}`)
	key := intranet.WithIdempotencyKey("job-7f3a")

	if err := sim.SetFaults(simulator.Faults{LostReply: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Call(t.Context(), intranet.OpBatchSubmit, tok.Value, body, key)
	if !errors.Is(err, intranet.ErrUnknownOutcome) {
		t.Fatalf("err = %v, want unknown outcome", err)
	}

	if err := sim.SetFaults(simulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Call(t.Context(), intranet.OpBatchSubmit, tok.Value, body, key)
	if err != nil {
		t.Fatal(err)
	}
	if st := sim.Stats(); st.BatchSubmissions != 1 || st.IdempotentReplays < 1 {
		t.Errorf("stats %+v, want one submission and a replay (data %s)", st, resp.Data)
	}

	// The same key with another body is a permanent 40009.
	other := json.RawMessage(`{"name": "other", "code": "var b = 2", "output": {"format": "GeoTIFF", "path": "/data/out/b.tif"}}`)
	_, err = c.Call(t.Context(), intranet.OpBatchSubmit, tok.Value, other, key)
	var e *intranet.Error
	if !errors.As(err, &e) || e.Class != intranet.ClassPermanent || e.Code != 40009 {
		t.Fatalf("err = %v, want permanent 40009", err)
	}
}
