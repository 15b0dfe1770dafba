package intranet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

const (
	secretToken    = "tok-SECRET-7d1f0c9a4b"
	secretPassword = "pw-SECRET-31415926"
	username       = "svc-test"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// setup starts a server running h and returns a client of it and the
// client's log output (Debug and up).
func setup(t *testing.T, h http.HandlerFunc, mod func(*intranet.Config)) (*intranet.Client, *syncBuffer) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	logs := &syncBuffer{}
	cfg := intranet.Config{
		BaseURL:  srv.URL,
		Username: username,
		Password: secretPassword,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := intranet.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, logs
}

// assertNoSecrets fails if s holds the token or the password.
func assertNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range []string{secretToken, secretPassword} {
		if strings.Contains(s, sec) {
			t.Errorf("%s contains a secret %q:\n%s", what, sec, s)
		}
	}
}

func writeEnvelope(w http.ResponseWriter, code int, msg string, data any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg, "data": data, "request_id": "r-test"})
}

func envelope(code int, msg string, data any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		writeEnvelope(w, code, msg, data)
	}
}

func status(code int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// hangUp hijacks the connection and closes it without an answer; with
// reset, it sends a TCP RST.
func hangUp(reset bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		if tc, ok := conn.(*net.TCPConn); ok && reset {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
}

// slowAnswer is how long slow takes to answer: far more than the 100ms
// deadlines of the tests that use it, so that a call ended by its deadline
// and one ended by the answer are told apart even on a loaded machine.
const slowAnswer = time.Minute

// slow answers after slowAnswer or when the client goes away.
func slow(w http.ResponseWriter, r *http.Request) {
	// The server notices a closed connection only once the body is read.
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(slowAnswer):
		writeEnvelope(w, 0, "success", map[string]any{})
	}
}

func TestCallClassification(t *testing.T) {
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		cfg        func(*intranet.Config)
		ctxTimeout time.Duration
		class      intranet.Class
		sentinel   error
		code       int
		httpStatus int
		retryAfter time.Duration // checked when non-zero
		retryMin   time.Duration // with retryAfter: accepted range
		alsoIs     error         // another target errors.Is must match
		msgHas     string        // substring of err.Error()
	}{
		{name: "40001 invalid params", handler: envelope(40001, "syntax error at line 1", nil),
			class: intranet.ClassPermanent, sentinel: intranet.ErrPermanent, code: 40001, httpStatus: 200,
			msgHas: "intranet aspect: code 40001: syntax error at line 1"},
		{name: "40003 token expired", handler: envelope(40003, "token expired", nil),
			class: intranet.ClassTokenExpired, sentinel: intranet.ErrTokenExpired, code: 40003, httpStatus: 200},
		{name: "40004 not found", handler: envelope(40004, "unknown task", nil),
			class: intranet.ClassPermanent, sentinel: intranet.ErrPermanent, code: 40004, httpStatus: 200},
		{name: "40009 idempotency conflict", handler: envelope(40009, "key reused", nil),
			class: intranet.ClassPermanent, sentinel: intranet.ErrPermanent, code: 40009, httpStatus: 200},
		{name: "unknown business code", handler: envelope(41234, "quota exceeded", nil),
			class: intranet.ClassPermanent, sentinel: intranet.ErrPermanent, code: 41234, httpStatus: 200,
			msgHas: "code 41234: quota exceeded"},
		{name: "40101 invalid credentials", handler: envelope(40101, "invalid credentials", nil),
			class: intranet.ClassInvalidCredentials, sentinel: intranet.ErrInvalidCredentials, code: 40101, httpStatus: 200},
		{name: "42900 with retry_after_ms", handler: envelope(42900, "slow down", map[string]any{"retry_after_ms": 2500}),
			class: intranet.ClassRateLimited, sentinel: intranet.ErrRateLimited, code: 42900, httpStatus: 200,
			retryAfter: 2500 * time.Millisecond, msgHas: "(retry after 2.5s)"},
		{name: "42900 without data", handler: envelope(42900, "slow down", nil),
			class: intranet.ClassRateLimited, sentinel: intranet.ErrRateLimited, code: 42900, httpStatus: 200,
			retryAfter: time.Second},
		{name: "42900 huge retry capped", handler: envelope(42900, "slow down", map[string]any{"retry_after_ms": 1e12}),
			class: intranet.ClassRateLimited, sentinel: intranet.ErrRateLimited, code: 42900, httpStatus: 200,
			retryAfter: 10 * time.Minute},
		{name: "50000 internal", handler: envelope(50000, "internal error", nil),
			class: intranet.ClassTransient, sentinel: intranet.ErrTransient, code: 50000, httpStatus: 200},
		{name: "50300 busy", handler: envelope(50300, "busy", nil),
			class: intranet.ClassTransient, sentinel: intranet.ErrTransient, code: 50300, httpStatus: 200},
		{name: "HTTP 429 Retry-After seconds", handler: status(429, map[string]string{"Retry-After": "3"}, "too many"),
			class: intranet.ClassRateLimited, sentinel: intranet.ErrRateLimited, httpStatus: 429,
			retryAfter: 3 * time.Second, msgHas: "intranet aspect: HTTP 429"},
		{name: "HTTP 429 Retry-After date", handler: status(429, map[string]string{"Retry-After": httpDate}, ""),
			class: intranet.ClassRateLimited, sentinel: intranet.ErrRateLimited, httpStatus: 429,
			retryAfter: 91 * time.Second, retryMin: 80 * time.Second},
		{name: "HTTP 429 no Retry-After", handler: status(429, nil, ""),
			class: intranet.ClassRateLimited, sentinel: intranet.ErrRateLimited, httpStatus: 429,
			retryAfter: time.Second},
		{name: "HTTP 429 Retry-After capped", handler: status(429, map[string]string{"Retry-After": "86400"}, ""),
			class: intranet.ClassRateLimited, sentinel: intranet.ErrRateLimited, httpStatus: 429,
			retryAfter: 10 * time.Minute},
		{name: "HTTP 500", handler: status(500, nil, "oops"),
			class: intranet.ClassTransient, sentinel: intranet.ErrTransient, httpStatus: 500, msgHas: "HTTP 500: oops"},
		{name: "HTTP 502 html", handler: status(502, map[string]string{"Content-Type": "text/html"}, "<html><h1>502 Bad Gateway</h1></html>"),
			class: intranet.ClassTransient, sentinel: intranet.ErrTransient, httpStatus: 502, msgHas: "intranet aspect: HTTP 502"},
		{name: "HTTP 503", handler: status(503, nil, ""),
			class: intranet.ClassTransient, sentinel: intranet.ErrTransient, httpStatus: 503, msgHas: "intranet aspect: HTTP 503"},
		{name: "HTTP 504", handler: status(504, nil, ""),
			class: intranet.ClassTransient, sentinel: intranet.ErrTransient, httpStatus: 504},
		{name: "HTTP 400", handler: status(400, nil, "bad request"),
			class: intranet.ClassPermanent, sentinel: intranet.ErrPermanent, httpStatus: 400},
		{name: "HTTP 404", handler: status(404, nil, "404 page not found"),
			class: intranet.ClassPermanent, sentinel: intranet.ErrPermanent, httpStatus: 404},
		{name: "HTTP 401 with envelope 40003", handler: status(401, nil, `{"code":40003,"message":"token expired"}`),
			class: intranet.ClassTokenExpired, sentinel: intranet.ErrTokenExpired, code: 40003, httpStatus: 401},
		{name: "redirect not followed", handler: status(302, map[string]string{"Location": "/login"}, ""),
			class: intranet.ClassPermanent, sentinel: intranet.ErrPermanent, httpStatus: 302, msgHas: "redirect to /login"},
		{name: "malformed JSON", handler: status(200, nil, `{"code": 0, "data": `),
			class: intranet.ClassUnknownOutcome, sentinel: intranet.ErrUnknownOutcome, httpStatus: 200,
			msgHas: "unknown outcome: malformed response"},
		{name: "not an envelope", handler: status(200, nil, `<html>hello</html>`),
			class: intranet.ClassUnknownOutcome, sentinel: intranet.ErrUnknownOutcome, httpStatus: 200},
		{name: "string code", handler: status(200, nil, `{"code":"0","data":{}}`),
			class: intranet.ClassUnknownOutcome, sentinel: intranet.ErrUnknownOutcome, httpStatus: 200},
		{name: "oversized body", handler: status(200, nil, `{"code":0,"data":"`+strings.Repeat("x", 4096)+`"}`),
			cfg:   func(c *intranet.Config) { c.MaxResponseBytes = 1024 },
			class: intranet.ClassPermanent, sentinel: intranet.ErrPermanent, httpStatus: 200,
			msgHas: "response larger than 1024 bytes"},
		{name: "connection closed", handler: hangUp(false),
			class: intranet.ClassUnknownOutcome, sentinel: intranet.ErrUnknownOutcome, msgHas: "unknown outcome"},
		{name: "connection reset", handler: hangUp(true),
			class: intranet.ClassUnknownOutcome, sentinel: intranet.ErrUnknownOutcome, msgHas: "unknown outcome"},
		{name: "truncated body", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, `{"code":0,`)
		}, class: intranet.ClassUnknownOutcome, sentinel: intranet.ErrUnknownOutcome, httpStatus: 200},
		{name: "ctx deadline while waiting", handler: slow, ctxTimeout: 100 * time.Millisecond,
			class: intranet.ClassUnknownOutcome, sentinel: intranet.ErrUnknownOutcome, alsoIs: context.DeadlineExceeded,
			msgHas: "intranet aspect: unknown outcome: context deadline exceeded"},
		{name: "client Timeout", handler: slow, cfg: func(c *intranet.Config) { c.Timeout = 100 * time.Millisecond },
			class: intranet.ClassUnknownOutcome, sentinel: intranet.ErrUnknownOutcome, alsoIs: context.DeadlineExceeded},
		{name: "message echoing the token is redacted", handler: func(w http.ResponseWriter, r *http.Request) {
			writeEnvelope(w, 40001, "bad header "+r.Header.Get("Authorization"), nil)
		}, class: intranet.ClassPermanent, sentinel: intranet.ErrPermanent, code: 40001, httpStatus: 200,
			msgHas: "bad header [redacted]"},
		{name: "long message truncated", handler: envelope(40001, strings.Repeat("é", 2000), nil),
			class: intranet.ClassPermanent, sentinel: intranet.ErrPermanent, code: 40001, httpStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, logs := setup(t, tt.handler, tt.cfg)
			ctx := t.Context()
			if tt.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTimeout)
				defer cancel()
			}
			start := time.Now()
			resp, err := c.Call(ctx, intranet.OpAspect, secretToken, map[string]any{"coverage_id": "dem_30m"})
			if err == nil {
				t.Fatalf("Call succeeded: %s", resp.Data)
			}
			if d := time.Since(start); d > slowAnswer/2 {
				t.Errorf("Call took %s: it waited for the answer, not for its deadline", d)
			}
			t.Logf("err: %v", err)
			var e *intranet.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *intranet.Error", err, err)
			}
			if e.Class != tt.class || intranet.ClassOf(err) != tt.class {
				t.Errorf("class = %v, want %v (err: %v)", e.Class, tt.class, err)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(err, %v) = false", tt.sentinel)
			}
			for _, other := range []error{intranet.ErrPermanent, intranet.ErrTransient, intranet.ErrTokenExpired,
				intranet.ErrRateLimited, intranet.ErrUnknownOutcome, intranet.ErrInvalidCredentials} {
				if other != tt.sentinel && errors.Is(err, other) {
					t.Errorf("errors.Is(err, %v) = true", other)
				}
			}
			if tt.alsoIs != nil && !errors.Is(err, tt.alsoIs) {
				t.Errorf("errors.Is(err, %v) = false", tt.alsoIs)
			}
			if e.Code != tt.code {
				t.Errorf("Code = %d, want %d", e.Code, tt.code)
			}
			if e.HTTPStatus != tt.httpStatus {
				t.Errorf("HTTPStatus = %d, want %d", e.HTTPStatus, tt.httpStatus)
			}
			if tt.retryAfter != 0 {
				lo := tt.retryAfter
				if tt.retryMin != 0 {
					lo = tt.retryMin
				}
				if e.RetryAfter < lo || e.RetryAfter > tt.retryAfter {
					t.Errorf("RetryAfter = %s, want %s..%s", e.RetryAfter, lo, tt.retryAfter)
				}
			} else if e.RetryAfter != 0 {
				t.Errorf("RetryAfter = %s, want 0", e.RetryAfter)
			}
			if e.Op != "aspect" {
				t.Errorf("Op = %q", e.Op)
			}
			if e.Duration <= 0 {
				t.Errorf("Duration = %s", e.Duration)
			}
			if n := len([]rune(e.Message)); n > 500 {
				t.Errorf("Message is %d runes long", n)
			}
			if tt.msgHas != "" && !strings.Contains(err.Error(), tt.msgHas) {
				t.Errorf("err = %q, want it to contain %q", err, tt.msgHas)
			}
			wantRetry := tt.class != intranet.ClassPermanent
			if intranet.Retryable(err) != wantRetry {
				t.Errorf("Retryable = %v, want %v", !wantRetry, wantRetry)
			}
			assertNoSecrets(t, "err.Error()", err.Error())
			assertNoSecrets(t, "%+v", fmt.Sprintf("%+v %#v", err, err))
			out := logs.String()
			assertNoSecrets(t, "log", out)
			if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "op=aspect") ||
				!strings.Contains(out, "duration_ms=") || !strings.Contains(out, "class="+tt.class.String()) {
				t.Errorf("log lacks the call's record:\n%s", out)
			}
		})
	}
}

func TestCallSuccess(t *testing.T) {
	var (
		mu  sync.Mutex
		got *http.Request
		raw []byte
	)
	c, logs := setup(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r
		raw, _ = io.ReadAll(r.Body)
		mu.Unlock()
		writeEnvelope(w, 0, "success", map[string]any{"cell_count": 512000})
	}, func(c *intranet.Config) { c.TokenPrefix = "Bearer " })

	body := map[string]any{"coverage_id": "dem_30m", "bbox": []float64{116.0, 39.8, 116.2, 40.0}, "scale_m": 30}
	resp, err := c.Call(t.Context(), intranet.OpBatchSubmit, secretToken, body, intranet.WithIdempotencyKey("job-42"))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Data) != `{"cell_count":512000}` {
		t.Errorf("Data = %s", resp.Data)
	}
	if resp.RequestID != "r-test" || resp.Duration <= 0 {
		t.Errorf("RequestID = %q, Duration = %s", resp.RequestID, resp.Duration)
	}
	mu.Lock()
	defer mu.Unlock()
	checks := []struct{ name, got, want string }{
		{"method", got.Method, http.MethodPost},
		{"path", got.URL.Path, "/api/batch/submit"},
		{"Authorization", got.Header.Get("Authorization"), "Bearer " + secretToken},
		{"Idempotency-Key", got.Header.Get("Idempotency-Key"), "job-42"},
		{"Content-Type", got.Header.Get("Content-Type"), "application/json"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	var sent map[string]any
	if err := json.Unmarshal(raw, &sent); err != nil || sent["coverage_id"] != "dem_30m" {
		t.Errorf("body = %s (%v)", raw, err)
	}
	out := logs.String()
	assertNoSecrets(t, "log", out)
	for _, want := range []string{"op=batch_submit", "code=0", "request_id=r-test", "duration_ms=", "token=" + intranet.Fingerprint(secretToken)} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestCallHeaders(t *testing.T) {
	type seen struct {
		authz    []string
		key      []string
		body     string
		hasAuthz bool
	}
	tests := []struct {
		name   string
		prefix string
		token  string
		opts   []intranet.CallOption
		body   any
		want   seen
	}{
		{name: "bare token", token: "abc", want: seen{authz: []string{"abc"}, hasAuthz: true, body: "{}"}},
		{name: "prefix", prefix: "Bearer ", token: "abc", want: seen{authz: []string{"Bearer abc"}, hasAuthz: true, body: "{}"}},
		{name: "no token no header", prefix: "Bearer ", token: "", want: seen{body: "{}"}},
		{name: "idempotency key", token: "abc", opts: []intranet.CallOption{intranet.WithIdempotencyKey("k1")},
			want: seen{authz: []string{"abc"}, key: []string{"k1"}, hasAuthz: true, body: "{}"}},
		{name: "empty key no header", token: "abc", opts: []intranet.CallOption{intranet.WithIdempotencyKey(""), nil},
			want: seen{authz: []string{"abc"}, hasAuthz: true, body: "{}"}},
		{name: "raw body", token: "abc", body: json.RawMessage(`{"task_id":"bt-1"}`),
			want: seen{authz: []string{"abc"}, hasAuthz: true, body: `{"task_id":"bt-1"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := make(chan seen, 1)
			c, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				_, has := r.Header["Authorization"]
				ch <- seen{authz: r.Header.Values("Authorization"), key: r.Header.Values("Idempotency-Key"), body: string(b), hasAuthz: has}
				writeEnvelope(w, 0, "success", nil)
			}, func(c *intranet.Config) { c.TokenPrefix = tt.prefix })
			if _, err := c.Call(t.Context(), intranet.OpBatchStatus, tt.token, tt.body, tt.opts...); err != nil {
				t.Fatal(err)
			}
			got := <-ch
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("server saw %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCallRejectedBeforeSending(t *testing.T) {
	c, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request to %s", r.URL.Path)
	}, nil)
	tests := []struct {
		name  string
		op    intranet.Operation
		token string
		body  any
		opts  []intranet.CallOption
	}{
		{name: "key too long", op: intranet.OpBatchSubmit, token: "t", opts: []intranet.CallOption{intranet.WithIdempotencyKey(strings.Repeat("k", 129))}},
		{name: "key with newline", op: intranet.OpBatchSubmit, token: "t", opts: []intranet.CallOption{intranet.WithIdempotencyKey("a\nb")}},
		{name: "token with newline", op: intranet.OpAspect, token: secretToken + "\r\nX: y"},
		{name: "body not encodable", op: intranet.OpAspect, token: "t", body: map[string]any{"f": func() {}}},
		{name: "zero operation", op: intranet.Operation{}, token: "t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Call(t.Context(), tt.op, tt.token, tt.body, tt.opts...)
			if !errors.Is(err, intranet.ErrPermanent) {
				t.Fatalf("err = %v, want a permanent error", err)
			}
			assertNoSecrets(t, "err", err.Error())
		})
	}
}

func TestCallCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		cancel()
		select { // the client hangs up; bounded so that a missed hang-up cannot block Close
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}, nil)
	_, err := c.Call(ctx, intranet.OpAspect, secretToken, nil)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, intranet.ErrTransient) {
		t.Fatalf("err = %v (class %v), want transient wrapping context.Canceled", err, intranet.ClassOf(err))
	}

	// A context cancelled before the call sends nothing.
	_, err = c.Call(ctx, intranet.OpAspect, secretToken, nil)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, intranet.ErrTransient) {
		t.Fatalf("err = %v, want transient wrapping context.Canceled", err)
	}
}

func TestCallConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := intranet.New(intranet.Config{BaseURL: url})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Call(t.Context(), intranet.OpAspect, secretToken, nil)
	if intranet.ClassOf(err) != intranet.ClassTransient || !intranet.Retryable(err) {
		t.Fatalf("err = %v (class %v), want transient", err, intranet.ClassOf(err))
	}
	if !strings.HasPrefix(err.Error(), "intranet aspect: ") || strings.Contains(err.Error(), "unknown outcome") {
		t.Errorf("err = %q", err)
	}
	assertNoSecrets(t, "err", err.Error())
}

func TestAuthenticate(t *testing.T) {
	type authReq struct {
		path, authz, ctype string
		body               map[string]string
	}
	tests := []struct {
		name     string
		handler  func(w http.ResponseWriter, r *http.Request, req map[string]string)
		cfg      func(*intranet.Config)
		path     string
		class    intranet.Class // 0: success
		code     int
		errLevel bool // an ERROR record is logged
	}{
		{name: "success", path: "/auth/token", handler: func(w http.ResponseWriter, r *http.Request, req map[string]string) {
			writeEnvelope(w, 0, "success", map[string]any{"token": secretToken, "expires_in": 7200})
		}},
		{name: "custom AuthURL", path: "/oauth/issue", handler: func(w http.ResponseWriter, r *http.Request, req map[string]string) {
			writeEnvelope(w, 0, "success", map[string]any{"token": secretToken, "expires_in": 7200})
		}, cfg: func(c *intranet.Config) { c.AuthURL = c.BaseURL + "/oauth/issue" }},
		{name: "wrong password", path: "/auth/token", handler: func(w http.ResponseWriter, r *http.Request, req map[string]string) {
			writeEnvelope(w, 40101, "invalid credentials for "+req["username"]+" with "+req["password"], nil)
		}, class: intranet.ClassInvalidCredentials, code: 40101, errLevel: true},
		{name: "auth down", path: "/auth/token", handler: func(w http.ResponseWriter, r *http.Request, req map[string]string) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}, class: intranet.ClassTransient, errLevel: true},
		{name: "no token in answer", path: "/auth/token", handler: func(w http.ResponseWriter, r *http.Request, req map[string]string) {
			writeEnvelope(w, 0, "success", map[string]any{"expires_in": 7200})
		}, class: intranet.ClassUnknownOutcome, errLevel: true},
		{name: "empty username", path: "", handler: func(w http.ResponseWriter, r *http.Request, req map[string]string) {
			t.Error("unexpected auth request")
		}, cfg: func(c *intranet.Config) { c.Username = "" }, class: intranet.ClassInvalidCredentials, errLevel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := make(chan authReq, 1)
			c, logs := setup(t, func(w http.ResponseWriter, r *http.Request) {
				var req map[string]string
				_ = json.NewDecoder(r.Body).Decode(&req)
				ch <- authReq{path: r.URL.Path, authz: r.Header.Get("Authorization"), ctype: r.Header.Get("Content-Type"), body: req}
				tt.handler(w, r, req)
			}, tt.cfg)
			before := time.Now()
			tok, err := c.Authenticate(t.Context())
			out := logs.String()
			assertNoSecrets(t, "log", out)
			if tt.path != "" {
				got := <-ch
				if got.path != tt.path || got.authz != "" || got.ctype != "application/json" ||
					got.body["username"] != username || got.body["password"] != secretPassword {
					t.Errorf("server saw %+v", got)
				}
			}
			if tt.class == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if tok.Value != secretToken {
					t.Errorf("Value = %q", tok.Value)
				}
				if tok.IssuedAt.Before(before) || tok.ExpiresAt.Sub(tok.IssuedAt) != 7200*time.Second || tok.Duration <= 0 {
					t.Errorf("token times: %#v", tok)
				}
				if !strings.Contains(out, "token="+intranet.Fingerprint(secretToken)) {
					t.Errorf("log lacks the token's fingerprint:\n%s", out)
				}
				return
			}
			if intranet.ClassOf(err) != tt.class {
				t.Fatalf("err = %v (class %v), want class %v", err, intranet.ClassOf(err), tt.class)
			}
			var e *intranet.Error
			errors.As(err, &e)
			if e.Code != tt.code || e.Op != "auth" {
				t.Errorf("Code = %d, Op = %q", e.Code, e.Op)
			}
			if tok != (intranet.Token{}) {
				t.Errorf("token on failure: %v", tok)
			}
			assertNoSecrets(t, "err", err.Error())
			if tt.errLevel && (!strings.Contains(out, "level=ERROR") || tt.cfg == nil && !strings.Contains(out, "username="+username)) {
				t.Errorf("log lacks an ERROR record with the username:\n%s", out)
			}
		})
	}
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  intranet.Config
		want string // substring of the error; "" means valid
	}{
		{name: "empty BaseURL", cfg: intranet.Config{}, want: "BaseURL is empty (set INTRANET_BASE_URL"},
		{name: "relative", cfg: intranet.Config{BaseURL: "127.0.0.1:8081"}, want: "INTRANET_BASE_URL"},
		{name: "ftp", cfg: intranet.Config{BaseURL: "ftp://example.com"}, want: "http:// or https://"},
		{name: "no host", cfg: intranet.Config{BaseURL: "http://"}, want: "no host"},
		{name: "user info", cfg: intranet.Config{BaseURL: "http://u:" + secretPassword + "@example.com"}, want: "user info"},
		{name: "query", cfg: intranet.Config{BaseURL: "http://example.com/?a=b"}, want: "query"},
		{name: "bad AuthURL", cfg: intranet.Config{BaseURL: "http://example.com", AuthURL: "example.com/auth"}, want: "INTRANET_AUTH_URL"},
		{name: "negative timeout", cfg: intranet.Config{BaseURL: "http://example.com", Timeout: -1}, want: "Timeout is negative"},
		{name: "prefix with newline", cfg: intranet.Config{BaseURL: "http://example.com", TokenPrefix: "Bearer\n"}, want: "TokenPrefix"},
		{name: "valid with path", cfg: intranet.Config{BaseURL: "https://gw.example.com/platform/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := intranet.New(tt.cfg)
			if tt.want == "" {
				if err != nil || c == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			assertNoSecrets(t, "err", err.Error())
		})
	}
}

func TestBaseURLPathPrefix(t *testing.T) {
	paths := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		if strings.HasSuffix(r.URL.Path, "/auth/token") {
			writeEnvelope(w, 0, "success", map[string]any{"token": "t", "expires_in": 60})
			return
		}
		writeEnvelope(w, 0, "success", nil)
	}))
	t.Cleanup(srv.Close)
	c, err := intranet.New(intranet.Config{BaseURL: srv.URL + "/platform/", Username: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(t.Context(), intranet.OpDAG, "t", nil); err != nil {
		t.Fatal(err)
	}
	if a, b := <-paths, <-paths; a != "/platform/auth/token" || b != "/platform/api/dag/compile" {
		t.Errorf("paths = %q, %q", a, b)
	}
}

func TestConfigAndClientHidePassword(t *testing.T) {
	cfg := intranet.Config{BaseURL: "http://example.com", Username: username, Password: secretPassword}
	c, err := intranet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("config", "cfg", cfg, "client", c)
	out := fmt.Sprintf("%v %+v %#v %s %d %v %+v %#v", cfg, cfg, cfg, cfg, cfg, c, c, c) + buf.String()
	assertNoSecrets(t, "output", out)
	if !strings.Contains(out, username) {
		t.Errorf("output lacks the username: %s", out)
	}
}
