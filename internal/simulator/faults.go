package simulator

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"
)

// Faults sets the rates of injected faults. Each rate is a probability in
// [0, 1] applied to every /api call (not to auth calls, not to /sim). The
// zero value injects nothing.
type Faults struct {
	// HTTP5xx: the gateway answers 502, 503 or 504 with a plain-text body;
	// the request is not processed.
	HTTP5xx float64 `json:"http_5xx"`
	// HTTP429: the gateway answers 429 with Retry-After: 1; not processed.
	HTTP429 float64 `json:"http_429"`
	// Busy: the platform answers the envelope code 50300; not processed.
	Busy float64 `json:"busy"`
	// RateLimited: the platform answers the envelope code 42900 with
	// data.retry_after_ms 500; not processed.
	RateLimited float64 `json:"rate_limited"`
	// Drop: the connection is closed before the request is processed.
	Drop float64 `json:"drop"`
	// LostReply: the request IS processed, then the connection is closed
	// without an answer, so the caller cannot know the outcome.
	LostReply float64 `json:"lost_reply"`
	// AuthDown makes the auth endpoint answer HTTP 503.
	AuthDown bool `json:"auth_down"`
}

// validate checks that every rate is a probability.
func (f Faults) validate() error {
	for _, r := range []struct {
		name string
		p    float64
	}{
		{"http_5xx", f.HTTP5xx}, {"http_429", f.HTTP429}, {"busy", f.Busy},
		{"rate_limited", f.RateLimited}, {"drop", f.Drop}, {"lost_reply", f.LostReply},
	} {
		if math.IsNaN(r.p) || r.p < 0 || r.p > 1 {
			return fmt.Errorf("simulator: fault rate %s = %v is not a probability (use a number from 0 to 1, e.g. 0.05 for 5%%)", r.name, r.p)
		}
	}
	return nil
}

// SetFaults replaces the fault rates. It fails, changing nothing, when a
// rate is outside [0, 1].
func (s *Simulator) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.ctlMu.Lock()
	s.faults = f
	s.ctlMu.Unlock()
	return nil
}

// Faults returns the current fault rates.
func (s *Simulator) Faults() Faults {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	return s.faults
}

// SetLatency sets the delay added to every /api call and to every auth call.
// Negative delays count as 0.
func (s *Simulator) SetLatency(api, auth time.Duration) {
	s.ctlMu.Lock()
	s.latency, s.authLatency = max(api, 0), max(auth, 0)
	s.ctlMu.Unlock()
}

// latencies returns the current /api and auth latencies.
func (s *Simulator) latencies() (api, auth time.Duration) {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	return s.latency, s.authLatency
}

// roll draws a fault with probability p.
func (s *Simulator) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	return s.rng.Float64() < p
}

// injectBefore decides the faults that stop a call before it is processed and
// answers the chosen one. It reports whether it answered.
func (s *Simulator) injectBefore(w http.ResponseWriter, r *http.Request, op string) bool {
	f := s.Faults()
	switch {
	case s.roll(f.HTTP5xx):
		statuses := []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
		s.ctlMu.Lock()
		status := statuses[s.rng.IntN(len(statuses))]
		s.ctlMu.Unlock()
		s.injected(op, "http_5xx")
		http.Error(w, fmt.Sprintf("%d %s (simulated gateway fault)", status, http.StatusText(status)), status)
	case s.roll(f.HTTP429):
		s.injected(op, "http_429")
		w.Header().Set("Retry-After", "1")
		http.Error(w, "429 Too Many Requests (simulated gateway fault)", http.StatusTooManyRequests)
	case s.roll(f.Busy):
		s.injected(op, "busy")
		s.writeEnvelope(w, http.StatusOK, CodeBusy, "busy, try again later", nil)
	case s.roll(f.RateLimited):
		s.injected(op, "rate_limited")
		s.writeEnvelope(w, http.StatusOK, CodeRateLimited, "rate limited", map[string]int{"retry_after_ms": 500})
	case s.roll(f.Drop):
		s.injected(op, "drop")
		closeConn(w)
	default:
		return false
	}
	return true
}

// injectLostReply decides whether the reply of a processed call is lost and,
// if so, closes the connection. It reports whether it did.
func (s *Simulator) injectLostReply(w http.ResponseWriter, op string) bool {
	if !s.roll(s.Faults().LostReply) {
		return false
	}
	s.injected(op, "lost_reply")
	closeConn(w)
	return true
}

// injected counts and logs one injected fault.
func (s *Simulator) injected(op, fault string) {
	s.stats.add(&s.stats.faultsInjected)
	s.log.Debug("sim: fault injected", slog.String("operation", op), slog.String("fault", fault))
}

// closeConn closes the client's connection without an answer. When the
// connection cannot be hijacked (HTTP/2, a recorder), it aborts the handler,
// which net/http turns into a reset stream or closed connection.
func closeConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// faultControl is the answer of /sim/faults: the fault rates plus the
// latencies in milliseconds.
type faultControl struct {
	Faults
	LatencyMS     int64 `json:"latency_ms"`
	AuthLatencyMS int64 `json:"auth_latency_ms"`
}

// serveFaults answers GET /sim/faults with the current settings and applies
// POST /sim/faults. A POST body changes only the fields it names.
func (s *Simulator) serveFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, s.faultControl())
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		s.writeEnvelope(w, http.StatusMethodNotAllowed, CodeInvalidParams,
			fmt.Sprintf("method %s not allowed on %s; use GET or POST", r.Method, r.URL.Path), nil)
		return
	}
	// Fields the body leaves out keep their value.
	upd := faultUpdate{Faults: s.Faults()}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if e := decodeBody(r, &upd); e != nil {
		s.writeEnvelope(w, http.StatusBadRequest, e.Code, e.Message, nil)
		return
	}
	api, auth := s.latencies()
	for _, l := range []struct {
		ms  *int64
		dst *time.Duration
	}{{upd.LatencyMS, &api}, {upd.AuthLatencyMS, &auth}} {
		if l.ms == nil {
			continue
		}
		if *l.ms < 0 {
			s.writeEnvelope(w, http.StatusBadRequest, CodeInvalidParams, "latency_ms and auth_latency_ms must not be negative", nil)
			return
		}
		*l.dst = time.Duration(*l.ms) * time.Millisecond
	}
	if err := s.SetFaults(upd.Faults); err != nil {
		s.writeEnvelope(w, http.StatusBadRequest, CodeInvalidParams, err.Error(), nil)
		return
	}
	s.SetLatency(api, auth)
	ctl := s.faultControl()
	s.log.Debug("sim: faults changed", slog.Any("faults", ctl.Faults),
		slog.Int64("latency_ms", ctl.LatencyMS), slog.Int64("auth_latency_ms", ctl.AuthLatencyMS))
	writeJSON(w, http.StatusOK, ctl)
}

// faultUpdate is the body of POST /sim/faults; absent latencies are kept.
type faultUpdate struct {
	Faults
	LatencyMS     *int64 `json:"latency_ms"`
	AuthLatencyMS *int64 `json:"auth_latency_ms"`
}

// faultControl returns the current settings in their /sim/faults form.
func (s *Simulator) faultControl() faultControl {
	api, auth := s.latencies()
	return faultControl{Faults: s.Faults(), LatencyMS: api.Milliseconds(), AuthLatencyMS: auth.Milliseconds()}
}
