package simulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Defaults that New fills into a zero Config.
const (
	DefaultUsername      = "svc-mcp"
	DefaultPassword      = "sim-password"
	DefaultTokenTTL      = 2 * time.Hour
	DefaultBatchDuration = 30 * time.Second
)

// maxBodyBytes is the largest request body the simulator reads (4 MiB).
const maxBodyBytes = 4 << 20

// Operation names, as counted in Stats.Calls and logged.
const (
	OpAuth        = "auth"
	OpAspect      = "aspect"
	OpBigQuery    = "bigquery"
	OpDAG         = "dag"
	OpBatchSubmit = "batch_submit"
	OpBatchStatus = "batch_status"
	OpBatchCancel = "batch_cancel"
)

// operations lists every operation, in the order Stats reports them.
var operations = []string{OpAuth, OpAspect, OpBigQuery, OpDAG, OpBatchSubmit, OpBatchStatus, OpBatchCancel}

// Config configures a Simulator. The zero value is usable: New fills every
// default.
type Config struct {
	// Accounts maps usernames to passwords.
	// Default: {"svc-mcp": "sim-password"} (also when empty).
	Accounts map[string]string
	// TokenTTL is how long an issued token lives. Default: 2h.
	TokenTTL time.Duration
	// TokenPrefix is expected before the token in the Authorization header,
	// e.g. "Bearer ". A bare token is accepted too. Default: "" (bare token).
	TokenPrefix string
	// Latency is added to every /api call. Default: 0.
	Latency time.Duration
	// AuthLatency is added to every auth call. Default: 0.
	AuthLatency time.Duration
	// BatchDuration is the time a batch task takes from QUEUED to its final
	// state. Default: 30s.
	BatchDuration time.Duration
	// Faults sets the fault-injection rates. Default: none.
	Faults Faults
	// Seed seeds the randomness that decides faults. Default: 0, meaning a
	// seed from the current time.
	Seed uint64
	// Logger receives a Debug record per call. Default: nil, meaning discard.
	Logger *slog.Logger
	// Now is the clock for token expiry, idempotency keys and batch task
	// lifecycles; tests pass a fake one. Default: nil, meaning time.Now.
	Now func() time.Time
}

// withDefaults returns a copy of c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if len(c.Accounts) == 0 {
		c.Accounts = map[string]string{DefaultUsername: DefaultPassword}
	} else {
		accounts := make(map[string]string, len(c.Accounts))
		for u, p := range c.Accounts {
			accounts[u] = p
		}
		c.Accounts = accounts
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.BatchDuration == 0 {
		c.BatchDuration = DefaultBatchDuration
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// validate reports the first problem of a defaulted Config.
func (c Config) validate() error {
	for u, p := range c.Accounts {
		if u == "" {
			return errors.New("simulator: an account has an empty username (give every account a name, e.g. --username svc-mcp)")
		}
		if p == "" {
			return fmt.Errorf("simulator: account %q has an empty password (set one, e.g. --password)", u)
		}
	}
	if c.TokenTTL < 0 {
		return fmt.Errorf("simulator: token TTL %v is negative (use a positive duration, or 0 for the default %v)", c.TokenTTL, DefaultTokenTTL)
	}
	if c.Latency < 0 || c.AuthLatency < 0 {
		return fmt.Errorf("simulator: latency %v / auth latency %v must not be negative (use 0 for none)", c.Latency, c.AuthLatency)
	}
	if c.BatchDuration < 0 {
		return fmt.Errorf("simulator: batch duration %v is negative (use a positive duration, or 0 for the default %v)", c.BatchDuration, DefaultBatchDuration)
	}
	return c.Faults.validate()
}

// Simulator is the platform simulator, an http.Handler. It is safe for
// concurrent use.
type Simulator struct {
	cfg Config // defaulted; Faults and latencies live in ctl below
	log *slog.Logger
	now func() time.Time

	// ctl holds the settings that change at runtime (faults.go).
	ctlMu       sync.Mutex
	faults      Faults
	latency     time.Duration
	authLatency time.Duration
	rng         *mrand.Rand

	// auth state (auth.go).
	authMu  sync.Mutex
	tokens  map[string]tokenEntry // sha256 of the token → entry
	current map[string]string     // account → sha256 of its live token

	// batch state (batch.go).
	batchMu   sync.Mutex
	tasks     map[string]*batchTask
	idemKeys  map[string]idemEntry
	lastSweep time.Time

	stats statsCounter // stats.go
}

// New returns a Simulator for cfg, with defaults filled in. It fails when a
// setting is out of range.
func New(cfg Config) (*Simulator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Simulator{
		cfg:         cfg,
		log:         cfg.Logger,
		now:         cfg.Now,
		faults:      cfg.Faults,
		latency:     cfg.Latency,
		authLatency: cfg.AuthLatency,
		rng:         mrand.New(mrand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		tokens:      make(map[string]tokenEntry),
		current:     make(map[string]string),
		tasks:       make(map[string]*batchTask),
		idemKeys:    make(map[string]idemEntry),
	}
	s.stats.init()
	return s, nil
}

// apiHandler processes the (already authenticated) request of one /api
// operation and answers its data or a business error.
type apiHandler func(r *http.Request) (any, *Error)

// ServeHTTP implements http.Handler.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/auth/token":
		if s.allow(w, r, http.MethodPost) {
			s.serveAuth(w, r)
		}
	case "/api/coverage/aspect":
		s.serveAPI(w, r, OpAspect, s.handleAspect)
	case "/api/bigquery/query":
		s.serveAPI(w, r, OpBigQuery, s.handleQuery)
	case "/api/dag/compile":
		s.serveAPI(w, r, OpDAG, s.handleDAG)
	case "/api/batch/submit":
		s.serveAPI(w, r, OpBatchSubmit, s.handleBatchSubmit)
	case "/api/batch/status":
		s.serveAPI(w, r, OpBatchStatus, s.handleBatchStatus)
	case "/api/batch/cancel":
		s.serveAPI(w, r, OpBatchCancel, s.handleBatchCancel)
	case "/sim/stats":
		if s.allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, s.Stats())
		}
	case "/sim/expire":
		if s.allow(w, r, http.MethodPost) {
			n := s.expireTokens()
			s.log.Debug("sim: tokens expired", slog.Int("expired", n))
			writeJSON(w, http.StatusOK, map[string]int{"expired": n})
		}
	case "/sim/faults":
		s.serveFaults(w, r)
	default:
		s.writeEnvelope(w, http.StatusNotFound, CodeNotFound, "no such endpoint: "+r.URL.Path, nil)
	}
}

// allow answers 405 and returns false unless r uses method.
func (s *Simulator) allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	s.writeEnvelope(w, http.StatusMethodNotAllowed, CodeInvalidParams,
		fmt.Sprintf("method %s not allowed on %s; use %s", r.Method, r.URL.Path, method), nil)
	return false
}

// serveAPI runs one /api call: latency, faults decided before processing,
// the token check, the operation itself, a lost reply decided after it, and
// the envelope.
func (s *Simulator) serveAPI(w http.ResponseWriter, r *http.Request, op string, h apiHandler) {
	if !s.allow(w, r, http.MethodPost) {
		return
	}
	start := time.Now()
	s.stats.call(op)
	log := s.log.With(slog.String("operation", op))

	// Read the body first: the server notices a client that hangs up only
	// once the body is read, and a slow call must not outlive its caller.
	raw, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(raw), errReader{readErr}))

	apiLatency, _ := s.latencies()
	if err := sleepCtx(r.Context(), apiLatency); err != nil {
		log.Debug("sim: client went away during latency", slog.Any("error", err))
		return
	}

	if s.injectBefore(w, r, op) {
		return
	}

	data, bizErr := s.authorize(r)
	if bizErr == nil {
		data, bizErr = h(r)
	}
	code, msg := CodeOK, "success"
	if bizErr != nil {
		code, msg, data = bizErr.Code, bizErr.Message, nil
	}

	if s.injectLostReply(w, op) {
		log.Debug("sim: call processed, reply lost", slog.Int("code", code), slog.Duration("duration", time.Since(start)))
		return
	}
	code = s.writeEnvelope(w, http.StatusOK, code, msg, data)
	log.Debug("sim: call", slog.Int("code", code), slog.Duration("duration", time.Since(start)))
}

// authorize checks the Authorization header; it answers 40003 when the token
// is missing, unknown, expired or superseded.
func (s *Simulator) authorize(r *http.Request) (any, *Error) {
	if s.checkToken(r.Header.Get("Authorization")) {
		return nil, nil
	}
	s.stats.add(&s.stats.expiredResponses)
	return nil, &Error{Code: CodeTokenExpired, Message: "token expired or invalid"}
}

func (s *Simulator) handleAspect(r *http.Request) (any, *Error) {
	var req AspectRequest
	if e := decodeBody(r, &req); e != nil {
		return nil, e
	}
	res, e := computeAspect(req)
	if e != nil {
		return nil, e
	}
	return res, nil
}

func (s *Simulator) handleQuery(r *http.Request) (any, *Error) {
	var req QueryRequest
	if e := decodeBody(r, &req); e != nil {
		return nil, e
	}
	res, e := runQuery(req)
	if e != nil {
		return nil, e
	}
	return res, nil
}

func (s *Simulator) handleDAG(r *http.Request) (any, *Error) {
	var req DAGRequest
	if e := decodeBody(r, &req); e != nil {
		return nil, e
	}
	res, e := compileDAG(req)
	if e != nil {
		return nil, e
	}
	return res, nil
}

// decodeBody decodes r's JSON body, which must be one object with known
// fields only, into dst. The body's size is limited by the caller.
func decodeBody(r *http.Request, dst any) *Error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		// Exactly one JSON value: anything after it is an error.
		if err = dec.Decode(&struct{}{}); err == io.EOF {
			return nil
		} else if err == nil {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return invalidf("request body is larger than %d bytes (4 MiB)", tooBig.Limit)
	case errors.Is(err, io.EOF):
		return invalidf("request body is empty; send a JSON object")
	default:
		return invalidf("invalid JSON body: %v", err)
	}
}

// envelope is the platform's answer.
type envelope struct {
	Code      int    `json:"code"`
	Message   string `json:"message"`
	Data      any    `json:"data,omitempty"`
	RequestID string `json:"request_id"`
}

// writeEnvelope writes an envelope with the HTTP status and returns the code
// it wrote: 50000 if data could not be encoded.
func (s *Simulator) writeEnvelope(w http.ResponseWriter, status, code int, msg string, data any) int {
	env := envelope{Code: code, Message: msg, Data: data, RequestID: "r-" + randomHex(8)}
	b, err := json.Marshal(env)
	if err != nil {
		s.log.Error("sim: encode answer", slog.Any("error", err))
		env = envelope{Code: CodeInternal, Message: "internal error: cannot encode the answer", RequestID: env.RequestID}
		b, _ = json.Marshal(env)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return env.Code
}

// writeJSON writes v as a plain JSON answer (the /sim routes).
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "cannot encode the answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// sleepCtx waits d, or less if ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// randomHex returns n random bytes from crypto/rand as 2n hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// errReader returns err (io.EOF when nil) after the body read up front.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err == nil {
		return 0, io.EOF
	}
	return 0, e.err
}
