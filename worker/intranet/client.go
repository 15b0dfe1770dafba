package intranet

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Defaults of Config.
const (
	DefaultTimeout          = 120 * time.Second
	DefaultAuthTimeout      = 15 * time.Second
	DefaultMaxResponseBytes = 16 << 20
)

// Limits of the contract.
const (
	// MaxIdempotencyKeyLen is the longest Idempotency-Key the platform keeps, in characters.
	MaxIdempotencyKeyLen = 128
	// defaultRetryAfter is the wait for a rate limit that does not say.
	defaultRetryAfter = time.Second
	// maxRetryAfter caps any wait the platform or a gateway asks for.
	maxRetryAfter = 10 * time.Minute
	// maxErrorBody is how much of a non-2xx body is read.
	maxErrorBody = 64 << 10
	// maxSnippet is how much of a non-envelope error body goes into a message.
	maxSnippet = 200
)

// Config configures a Client. BaseURL is required; every other field has a
// default.
type Config struct {
	// BaseURL is the platform's root, e.g. http://127.0.0.1:8081. Required;
	// http or https, without user info, query or fragment. A path is kept as
	// a prefix of every operation's path.
	BaseURL string
	// AuthURL is the token endpoint. Default: BaseURL + "/auth/token".
	AuthURL string
	// Username is the service account Authenticate uses.
	Username string
	// Password is the service account's password. It goes only into the auth
	// request's body; never into logs or errors. Default: "" (set it or
	// PasswordFile, not both).
	Password string
	// PasswordFile names a file holding the password (surrounding white space
	// trimmed), in place of Password. The file is read again at each
	// Authenticate and each CredentialsFingerprint, so rewriting it heals
	// refused credentials without a restart. New checks that it can be read.
	// Default: "" (use Password).
	PasswordFile string
	// TokenPrefix goes before the token in the Authorization header, e.g.
	// "Bearer ". Default: "" (the bare token).
	TokenPrefix string
	// Timeout bounds one Call when ctx has no earlier deadline.
	// Default: 120s.
	Timeout time.Duration
	// AuthTimeout bounds one Authenticate when ctx has no earlier deadline.
	// Default: 15s.
	AuthTimeout time.Duration
	// MaxResponseBytes caps a response body; a larger success body is a
	// permanent error. Default: 16 MiB.
	MaxResponseBytes int64
	// HTTPClient sends the requests. Default: a client with its own pooled
	// transport, no overall timeout (deadlines come from ctx) and no
	// redirects followed.
	HTTPClient *http.Client
	// Logger receives a Debug record per call and an Error record per failed
	// authentication. Default: discard.
	Logger *slog.Logger
}

// String describes the config without the password.
func (c Config) String() string {
	pw := "empty"
	if c.Password != "" {
		pw = "set"
	}
	return fmt.Sprintf("intranet.Config{BaseURL:%q, AuthURL:%q, Username:%q, Password:%s, PasswordFile:%q, TokenPrefix:%q, Timeout:%s, AuthTimeout:%s, MaxResponseBytes:%d}",
		c.BaseURL, c.AuthURL, c.Username, pw, c.PasswordFile, c.TokenPrefix, c.Timeout, c.AuthTimeout, c.MaxResponseBytes)
}

// Format implements fmt.Formatter so that no verb prints the password.
func (c Config) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue implements slog.LogValuer without the password.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.BaseURL),
		slog.String("auth_url", c.AuthURL),
		slog.String("username", c.Username),
		slog.Bool("password_set", c.Password != ""),
		slog.String("password_file", c.PasswordFile),
		slog.Duration("timeout", c.Timeout),
		slog.Duration("auth_timeout", c.AuthTimeout),
	)
}

// Operation is one platform API: a name for errors, logs and metrics, and
// the path it is POSTed to.
type Operation struct {
	Name string
	Path string
}

// String returns the operation's name.
func (o Operation) String() string { return o.Name }

// The operations of the contract.
var (
	OpAspect      = Operation{"aspect", "/api/coverage/aspect"}
	OpBigQuery    = Operation{"bigquery", "/api/bigquery/query"}
	OpDAG         = Operation{"dag", "/api/dag/compile"}
	OpBatchSubmit = Operation{"batch_submit", "/api/batch/submit"}
	OpBatchStatus = Operation{"batch_status", "/api/batch/status"}
	OpBatchCancel = Operation{"batch_cancel", "/api/batch/cancel"}
)

// opAuth names the auth call in errors and logs.
const opAuth = "auth"

// Client calls the platform. It is safe for concurrent use.
type Client struct {
	baseURL  string // without a trailing slash
	authURL  string
	username string
	password string // unless passwordFile is set
	// passwordFile, when set, is read at each use; lastPassword keeps the
	// latest content read, to redact it from error messages.
	passwordFile string
	lastPassword atomic.Pointer[string]
	tokenPrefix  string
	timeout      time.Duration
	authTimeout  time.Duration
	maxBody      int64
	hc           *http.Client
	log          *slog.Logger
}

// Format implements fmt.Formatter so that printing a Client shows no secret.
func (c *Client) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "intranet.Client{BaseURL:%q, AuthURL:%q, Username:%q}", c.baseURL, c.authURL, c.username)
}

// New validates cfg, fills its defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.BaseURL) == "" {
		return nil, errors.New("intranet: BaseURL is empty (set INTRANET_BASE_URL, e.g. http://127.0.0.1:8081)")
	}
	base, err := checkURL("BaseURL", "INTRANET_BASE_URL", cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	authURL := base + "/auth/token"
	if strings.TrimSpace(cfg.AuthURL) != "" {
		if authURL, err = checkURL("AuthURL", "INTRANET_AUTH_URL", cfg.AuthURL); err != nil {
			return nil, err
		}
	}
	if cfg.Password != "" && cfg.PasswordFile != "" {
		return nil, errors.New("intranet: both Password and PasswordFile are set; set INTRANET_PASSWORD or INTRANET_PASSWORD_FILE, not both")
	}
	if !headerSafe(cfg.TokenPrefix) {
		return nil, errors.New("intranet: TokenPrefix contains control characters (check INTRANET_TOKEN_PREFIX)")
	}
	switch {
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("intranet: Timeout is negative (%s); leave it 0 for the default %s", cfg.Timeout, DefaultTimeout)
	case cfg.AuthTimeout < 0:
		return nil, fmt.Errorf("intranet: AuthTimeout is negative (%s); leave it 0 for the default %s", cfg.AuthTimeout, DefaultAuthTimeout)
	case cfg.MaxResponseBytes < 0:
		return nil, fmt.Errorf("intranet: MaxResponseBytes is negative (%d); leave it 0 for the default %d", cfg.MaxResponseBytes, DefaultMaxResponseBytes)
	}
	c := &Client{
		baseURL:      base,
		authURL:      authURL,
		username:     cfg.Username,
		password:     cfg.Password,
		passwordFile: cfg.PasswordFile,
		tokenPrefix:  cfg.TokenPrefix,
		timeout:      orDefault(cfg.Timeout, DefaultTimeout),
		authTimeout:  orDefault(cfg.AuthTimeout, DefaultAuthTimeout),
		maxBody:      orDefault(cfg.MaxResponseBytes, DefaultMaxResponseBytes),
		hc:           cfg.HTTPClient,
		log:          cfg.Logger,
	}
	if c.hc == nil {
		c.hc = defaultHTTPClient()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if _, err := c.currentPassword(); err != nil {
		return nil, err
	}
	return c, nil
}

// currentPassword returns Config.Password, or the trimmed content of
// Config.PasswordFile read now.
func (c *Client) currentPassword() (string, error) {
	if c.passwordFile == "" {
		return c.password, nil
	}
	b, err := os.ReadFile(c.passwordFile)
	if err != nil {
		// The path is not a secret; the error names it.
		return "", fmt.Errorf("intranet: read the password file (check INTRANET_PASSWORD_FILE): %w", err)
	}
	pw := strings.TrimSpace(string(b))
	c.lastPassword.Store(&pw)
	return pw, nil
}

// knownPassword is the password last used, for redaction.
func (c *Client) knownPassword() string {
	if p := c.lastPassword.Load(); p != nil {
		return *p
	}
	return c.password
}

// CredentialsFingerprint names the credentials Authenticate would send now
// (the username and the password, re-read from Config.PasswordFile when
// set) without revealing them: see [CredentialsFingerprint]. Two clients
// with the same credentials have the same fingerprint; rewriting the
// password file changes it. An unreadable password file has a fingerprint
// of its own, different from any readable one.
func (c *Client) CredentialsFingerprint() string {
	pw, err := c.currentPassword()
	if err != nil {
		return CredentialsFingerprint(c.username, "\x00unreadable\x00"+err.Error())
	}
	return CredentialsFingerprint(c.username, pw)
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// checkURL validates an absolute http(s) URL and returns it without a
// trailing slash.
func checkURL(field, env, raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the URL, which may hold a password.
		return "", fmt.Errorf("intranet: %s is not a valid URL (check %s)", field, env)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("intranet: %s must be an absolute http:// or https:// URL (check %s)", field, env)
	case u.Host == "":
		return "", fmt.Errorf("intranet: %s has no host (check %s)", field, env)
	case u.User != nil:
		return "", fmt.Errorf("intranet: %s must not contain user info; set INTRANET_USERNAME and INTRANET_PASSWORD instead (check %s)", field, env)
	case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(raw, "?"):
		return "", fmt.Errorf("intranet: %s must not have a query or fragment (check %s)", field, env)
	}
	return strings.TrimRight(raw, "/"), nil
}

// defaultHTTPClient pools connections for many concurrent workers, bounds
// connecting, and leaves the overall deadline to ctx. It does not follow
// redirects: a redirect from an API gateway is a configuration error.
func defaultHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// headerSafe reports whether s can go into a header value.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// CallOption sets a per-call option of Call.
type CallOption func(*callOptions)

type callOptions struct {
	idempotencyKey string
}

// WithIdempotencyKey sends the Idempotency-Key header (at most 128
// characters). The platform answers a repeated batch submit with the same key
// and body with the first submit's task, so a submit whose outcome is unknown
// can be repeated safely with the same key. An empty key sends no header.
func WithIdempotencyKey(key string) CallOption {
	return func(o *callOptions) { o.idempotencyKey = key }
}

// Response is the successful answer to a Call.
type Response struct {
	// Data is the envelope's data, as the platform sent it.
	Data json.RawMessage
	// RequestID is the envelope's request_id.
	RequestID string
	// Duration is how long the call took, including reading the body.
	Duration time.Duration
}

// Call POSTs body, encoded as JSON (nil sends {}; pass a json.RawMessage to
// send bytes as they are), to op's path with the header Authorization:
// TokenPrefix+token (no header when token is empty). It decodes the envelope
// and returns its data when the code is 0; any other outcome is an *Error.
//
// The call ends at ctx's deadline or after Config.Timeout, whichever is first.
func (c *Client) Call(ctx context.Context, op Operation, token string, body any, opts ...CallOption) (*Response, error) {
	var o callOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	name := op.Name
	if name == "" {
		name = op.Path
	}
	fail := func(format string, args ...any) (*Response, error) {
		return nil, &Error{Op: name, Class: ClassPermanent, Message: fmt.Sprintf(format, args...)}
	}
	if !strings.HasPrefix(op.Path, "/") {
		return fail("operation path %q must start with /", op.Path)
	}
	if !headerSafe(token) {
		return fail("token contains control characters")
	}
	if n := utf8.RuneCountInString(o.idempotencyKey); n > MaxIdempotencyKeyLen {
		return fail("Idempotency-Key is %d characters long, at most %d allowed", n, MaxIdempotencyKeyLen)
	} else if k := o.idempotencyKey; !headerSafe(k) {
		return fail("Idempotency-Key contains control characters")
	}
	payload := []byte("{}")
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, &Error{Op: name, Class: ClassPermanent, Message: "encode request body", Err: err}
		}
	}
	header := make(http.Header, 2)
	if token != "" {
		header.Set("Authorization", c.tokenPrefix+token)
	}
	if o.idempotencyKey != "" {
		header.Set("Idempotency-Key", o.idempotencyKey)
	}
	env, dur, e := c.post(ctx, name, c.baseURL+op.Path, c.timeout, payload, header, token)
	attrs := []slog.Attr{
		slog.String("op", name),
		slog.Int64("duration_ms", dur.Milliseconds()),
		slog.String("token", Fingerprint(token)),
	}
	if o.idempotencyKey != "" {
		attrs = append(attrs, slog.String("idempotency_key", o.idempotencyKey))
	}
	if e != nil {
		c.log.LogAttrs(ctx, slog.LevelDebug, "intranet call failed", append(attrs, e.attrs()...)...)
		return nil, e
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "intranet call",
		append(attrs, slog.Int("code", env.Code), slog.String("request_id", env.RequestID))...)
	return &Response{Data: env.Data, RequestID: env.RequestID, Duration: dur}, nil
}

// attrs describes e for a log record.
func (e *Error) attrs() []slog.Attr {
	a := []slog.Attr{slog.String("class", e.Class.String())}
	if e.Code != 0 {
		a = append(a, slog.Int("code", e.Code))
	}
	if e.HTTPStatus != 0 {
		a = append(a, slog.Int("http_status", e.HTTPStatus))
	}
	if e.RequestID != "" {
		a = append(a, slog.String("request_id", e.RequestID))
	}
	if e.RetryAfter > 0 {
		a = append(a, slog.Int64("retry_after_ms", e.RetryAfter.Milliseconds()))
	}
	return append(a, slog.String("error", e.Error()))
}

// Authenticate trades Config.Username and Config.Password (or the content
// of Config.PasswordFile, read now) for a token.
// Note the platform's rule: a new token ends every earlier token of the
// account at once.
//
// A refusal is ClassInvalidCredentials, as are an empty Username and an
// unreadable PasswordFile. The call
// ends at ctx's deadline or after Config.AuthTimeout, whichever is first.
func (c *Client) Authenticate(ctx context.Context) (Token, error) {
	start := time.Now()
	tok, err := c.authenticate(ctx, start)
	if err != nil {
		attrs := []slog.Attr{slog.String("username", c.username), slog.String("auth_url", c.authURL)}
		if e := (*Error)(nil); errors.As(err, &e) {
			attrs = append(attrs, slog.Int64("duration_ms", e.Duration.Milliseconds()))
			attrs = append(attrs, e.attrs()...)
		}
		level := slog.LevelError
		if errors.Is(err, context.Canceled) {
			level = slog.LevelDebug
		}
		c.log.LogAttrs(ctx, level, "intranet authentication failed", attrs...)
		return Token{}, err
	}
	c.log.LogAttrs(ctx, slog.LevelInfo, "intranet token issued",
		slog.String("username", c.username),
		slog.String("token", Fingerprint(tok.Value)),
		slog.Time("expires_at", tok.ExpiresAt),
		slog.Int64("duration_ms", tok.Duration.Milliseconds()))
	return tok, nil
}

func (c *Client) authenticate(ctx context.Context, start time.Time) (Token, error) {
	if c.username == "" {
		return Token{}, &Error{Op: opAuth, Class: ClassInvalidCredentials,
			Message: "Username is empty (set INTRANET_USERNAME)"}
	}
	password, err := c.currentPassword()
	if err != nil {
		// Not the platform's answer, but this replica's credentials are
		// unusable until the file is fixed.
		return Token{}, &Error{Op: opAuth, Class: ClassInvalidCredentials, Message: "password unavailable", Err: err}
	}
	payload, err := json.Marshal(struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}{c.username, password})
	if err != nil {
		return Token{}, &Error{Op: opAuth, Class: ClassPermanent, Message: "encode auth request", Err: err}
	}
	env, dur, e := c.post(ctx, opAuth, c.authURL, c.authTimeout, payload, nil, password)
	if e != nil {
		return Token{}, e
	}
	var data struct {
		Token     string      `json:"token"`
		ExpiresIn json.Number `json:"expires_in"`
	}
	malformed := func(msg string, err error) (Token, error) {
		return Token{}, &Error{Op: opAuth, Class: ClassUnknownOutcome, HTTPStatus: http.StatusOK,
			Message: "malformed response: " + msg, RequestID: env.RequestID, Duration: dur, Err: err}
	}
	if err := json.Unmarshal(env.Data, &data); err != nil {
		return malformed("auth data", err)
	}
	if data.Token == "" {
		return malformed("no token in auth data", nil)
	}
	if !headerSafe(data.Token) {
		return malformed("token contains control characters", nil)
	}
	tok := Token{Value: data.Token, IssuedAt: start, Duration: dur}
	if data.ExpiresIn != "" {
		secs, err := data.ExpiresIn.Float64()
		if err != nil || math.IsNaN(secs) || secs < 0 {
			return malformed("expires_in is not a number of seconds", err)
		}
		if secs > 0 && secs < float64(math.MaxInt64/int64(time.Second)) {
			tok.ExpiresAt = start.Add(time.Duration(secs * float64(time.Second)))
		}
	}
	return tok, nil
}

// post sends one request and classifies the outcome. secret (the token or
// the password) is redacted from any message.
func (c *Client) post(ctx context.Context, op, target string, timeout time.Duration, payload []byte, header http.Header, secret string) (Envelope, time.Duration, *Error) {
	start := time.Now()
	fail := func(e *Error) (Envelope, time.Duration, *Error) {
		e.Op = op
		e.Duration = time.Since(start)
		e.Message = truncate(redact(e.Message, secret, c.knownPassword()), maxMessage)
		return Envelope{}, e.Duration, e
	}
	if err := ctx.Err(); err != nil {
		// Not sent: safe to repeat later.
		return fail(&Error{Class: ClassTransient, Message: "not sent", Err: err})
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		return fail(&Error{Class: ClassPermanent, Message: "build request", Err: err})
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "mcpjobs-intranet/1")

	resp, err := c.hc.Do(req)
	if err != nil {
		return fail(classifyTransport(ctx, err))
	}
	defer resp.Body.Close()
	status := resp.StatusCode
	reqID := resp.Header.Get("X-Request-Id")

	if status < 200 || status > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return fail(classifyStatus(resp, body, reqID))
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		e := classifyTransport(ctx, err)
		e.HTTPStatus, e.RequestID = status, reqID
		if e.Class == ClassUnknownOutcome {
			e.Message = "reading response"
		}
		return fail(e)
	}
	if int64(len(body)) > c.maxBody {
		return fail(&Error{Class: ClassPermanent, HTTPStatus: status, RequestID: reqID,
			Message: fmt.Sprintf("response larger than %d bytes", c.maxBody)})
	}
	env, err := DecodeEnvelope(body)
	if err != nil {
		return fail(&Error{Class: ClassUnknownOutcome, HTTPStatus: status, RequestID: reqID,
			Message: "malformed response", Err: err})
	}
	if env.RequestID == "" {
		env.RequestID = reqID
	}
	if env.Code != 0 {
		e := &Error{Class: classifyCode(env.Code), Code: env.Code, HTTPStatus: status,
			Message: env.Message, RequestID: env.RequestID}
		if e.Class == ClassRateLimited {
			e.RetryAfter = dataRetryAfter(env.Data, resp.Header)
		}
		return fail(e)
	}
	return env, time.Since(start), nil
}

// classifyTransport classifies an error of sending a request or reading its
// answer. parent is the caller's context.
func classifyTransport(parent context.Context, err error) *Error {
	if errors.Is(parent.Err(), context.Canceled) {
		if !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w (%s)", context.Canceled, shortError(err))
		}
		return &Error{Class: ClassTransient, Err: err}
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &opErr) && (opErr.Op == "dial" || opErr.Op == "proxyconnect"),
		errors.As(err, &dnsErr):
		// No connection, so the request was certainly not sent.
		return &Error{Class: ClassTransient, Err: err}
	case errors.As(err, &certErr):
		return &Error{Class: ClassPermanent, Message: "TLS certificate not trusted", Err: err}
	}
	// Timeout, reset, EOF, deadline: the request may have been acted on.
	return &Error{Class: ClassUnknownOutcome, Err: err}
}

// classifyStatus classifies a non-2xx answer.
func classifyStatus(resp *http.Response, body []byte, reqID string) *Error {
	e := &Error{Class: ClassPermanent, HTTPStatus: resp.StatusCode, RequestID: reqID}
	env, envErr := DecodeEnvelope(body)
	if envErr == nil {
		e.Message = env.Message
		if env.RequestID != "" {
			e.RequestID = env.RequestID
		}
	} else {
		e.Message = snippet(resp.Header.Get("Content-Type"), body)
	}
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests:
		e.Class = ClassRateLimited
		e.RetryAfter = headerRetryAfter(resp.Header, time.Now())
	case s >= 500:
		e.Class = ClassTransient
	case envErr == nil && env.Code != 0 && s >= 400:
		// A platform that answers its business errors with a 4xx status.
		e.Class, e.Code = classifyCode(env.Code), env.Code
		if e.Class == ClassRateLimited {
			e.RetryAfter = dataRetryAfter(env.Data, resp.Header)
		}
	case s >= 300 && s < 400:
		if loc := resp.Header.Get("Location"); loc != "" {
			e.Message = "redirect to " + loc
		}
	}
	return e
}

// snippet returns a single-line start of a non-envelope error body, or ""
// for HTML pages and binary bodies.
func snippet(contentType string, body []byte) string {
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "text/html" || len(body) == 0 {
		return ""
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0xfffd }) {
		return ""
	}
	return truncate(s, maxSnippet)
}

// dataRetryAfter reads data.retry_after_ms of a 42900 answer, else a
// Retry-After header, else 1s.
func dataRetryAfter(data json.RawMessage, h http.Header) time.Duration {
	var v struct {
		RetryAfterMS json.Number `json:"retry_after_ms"`
	}
	if json.Unmarshal(data, &v) == nil && v.RetryAfterMS != "" {
		if ms, err := v.RetryAfterMS.Float64(); err == nil && ms > 0 {
			return clampRetryAfter(ms / 1000)
		}
	}
	return headerRetryAfter(h, time.Now())
}

// headerRetryAfter reads a Retry-After header: seconds or an HTTP date.
// Missing, past or unreadable means 1s; the result is capped at 10 minutes.
func headerRetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return defaultRetryAfter
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		return clampRetryAfter(secs)
	}
	if t, err := http.ParseTime(v); err == nil {
		// A date has whole seconds; round up so as not to come back early.
		return clampRetryAfter(math.Ceil(t.Sub(now).Seconds()))
	}
	return defaultRetryAfter
}

// clampRetryAfter turns seconds into a wait between 1ms and 10 minutes;
// nonsense (zero, negative, NaN) gives the default 1s.
func clampRetryAfter(secs float64) time.Duration {
	switch {
	case math.IsNaN(secs) || secs <= 0:
		return defaultRetryAfter
	case secs >= maxRetryAfter.Seconds():
		return maxRetryAfter
	}
	return max(time.Duration(secs*float64(time.Second)), time.Millisecond)
}
