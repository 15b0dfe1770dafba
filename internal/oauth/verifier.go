// Package oauth validates the access tokens that an OpenID Connect provider
// (Keycloak, Entra ID, Okta, Dex, ...) issues, as an OAuth 2.1 resource
// server does: JWTs (RFC 9068) signed with one of the provider's published
// keys, for this server's audience, within their validity.
//
// The cryptography and JWT parsing are go-jose's (github.com/go-jose/go-jose/v4):
// tokens are parsed with an allow-list of asymmetric algorithms, so "none"
// and HMAC tokens are refused before any key is looked at. This package adds
// what a resource server needs around it: OpenID discovery of the key set,
// a key cache refetched on an unknown key ID at a bounded rate, and the
// audience, scope and identity checks.
package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Errors of Verify, wrapped with the reason.
var (
	// ErrInvalidToken: the token is malformed, not signed by the issuer,
	// not for this audience, expired, not yet valid, or names no identity.
	// The client should sign in again (HTTP 401, error="invalid_token").
	ErrInvalidToken = errors.New("oauth: invalid token")
	// ErrInsufficientScope: a valid token lacks a required scope (HTTP 403,
	// error="insufficient_scope").
	ErrInsufficientScope = errors.New("oauth: insufficient scope")
	// ErrProviderUnavailable: the issuer's discovery document or key set
	// could not be fetched, so the token cannot be checked now (HTTP 503).
	ErrProviderUnavailable = errors.New("oauth: identity provider unavailable")
)

// Algorithms are the signature algorithms accepted: RSA (PKCS#1 v1.5 and
// PSS), ECDSA and Ed25519. Never "none", never HMAC: a resource server
// holds no shared secret, and an HMAC token "signed" with the provider's
// public key must not pass.
var Algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// Defaults of Config.
const (
	DefaultIdentityClaim   = "sub"
	DefaultLeeway          = 30 * time.Second
	DefaultRefetchInterval = 30 * time.Second
	DefaultKeysMaxAge      = time.Hour
	DefaultFetchTimeout    = 10 * time.Second
)

// maxDocumentBytes caps a discovery document or key set.
const maxDocumentBytes = 1 << 20

// maxIdentityBytes caps the identity claim's value.
const maxIdentityBytes = 256

// Config configures a Verifier.
type Config struct {
	// Issuer is the provider's issuer URL (MCP_OAUTH_ISSUER), exactly as
	// tokens carry it in "iss"; Issuer + "/.well-known/openid-configuration"
	// names the key set (jwks_uri). https, or http on a loopback host.
	// Required.
	Issuer string
	// Audience is the value "aud" must contain (MCP_OAUTH_AUDIENCE): this
	// server's resource identifier (RFC 8707). Required.
	Audience string
	// IdentityClaim is the claim that names the caller
	// (MCP_OAUTH_IDENTITY_CLAIM), a non-empty string of at most 256 bytes.
	// Default: "sub".
	IdentityClaim string
	// RequiredScopes must all be granted, in "scope" (RFC 9068, a
	// space-separated string) or "scp" (a string or a list, as Entra ID and
	// Okta send it) (MCP_OAUTH_REQUIRED_SCOPES). Default: none.
	RequiredScopes []string
	// Leeway is the clock skew allowed on exp, nbf and iat. Default: 30s.
	Leeway time.Duration
	// RefetchInterval is the shortest time between two fetches of the key
	// set. A token signed by an unknown key ID triggers a fetch only when
	// the last one is older; otherwise it is refused. So a flood of forged
	// key IDs costs the provider one request per interval, and a rotated
	// key is picked up on its first use past the interval. Default: 30s.
	RefetchInterval time.Duration
	// KeysMaxAge is how long a fetched key set is trusted before it is
	// fetched again on next use, so a key the provider withdrew stops
	// verifying. Default: 1h.
	KeysMaxAge time.Duration
	// HTTPClient fetches the discovery document and the key set; each fetch
	// is bounded by DefaultFetchTimeout. Default: http.DefaultClient.
	HTTPClient *http.Client
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger receives key set fetches and their failures. Default: discard.
	Logger *slog.Logger
}

// Principal is a caller a token proved.
type Principal struct {
	// Identity is the value of the identity claim.
	Identity string
	// Scopes are the scopes the token grants.
	Scopes []string
	// Expiry is when the token ends.
	Expiry time.Time
}

// Verifier validates access tokens of one issuer for one audience. It is
// safe for concurrent use.
type Verifier struct {
	cfg Config
	log *slog.Logger
	// fetching admits one fetch at a time; waiters may give up with their
	// context.
	fetching chan struct{}

	mu          sync.Mutex
	jwksURL     string            // from discovery; "" until discovered
	keys        []jose.JSONWebKey // public signing keys of the last good fetch
	fetchedAt   time.Time         // last successful fetch
	attemptedAt time.Time         // last fetch, successful or not
	fetchErr    error             // error of the last fetch, nil if it succeeded
	fetches     int               // fetches of the key set, for Stats
}

// New checks cfg and returns a Verifier. It does not contact the provider:
// the first token (or Refresh) does.
func New(cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("oauth: Config.Issuer is empty (set MCP_OAUTH_ISSUER to the provider's issuer URL, e.g. https://sso.example.com/realms/corp)")
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("oauth: issuer %q is not an http(s) URL without query or fragment (use the \"issuer\" of the provider's /.well-known/openid-configuration)", cfg.Issuer)
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("oauth: issuer %q is plain http on a non-loopback host; use https (OAuth 2.1 requires TLS)", cfg.Issuer)
	}
	if cfg.Audience == "" {
		return nil, errors.New("oauth: Config.Audience is empty (set MCP_OAUTH_AUDIENCE, or MCP_PUBLIC_URL which it defaults to)")
	}
	if cfg.IdentityClaim == "" {
		cfg.IdentityClaim = DefaultIdentityClaim
	}
	cfg.RequiredScopes = slices.DeleteFunc(slices.Clone(cfg.RequiredScopes), func(s string) bool { return s == "" })
	if cfg.Leeway <= 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.RefetchInterval <= 0 {
		cfg.RefetchInterval = DefaultRefetchInterval
	}
	if cfg.KeysMaxAge <= 0 {
		cfg.KeysMaxAge = DefaultKeysMaxAge
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Verifier{cfg: cfg, log: cfg.Logger, fetching: make(chan struct{}, 1)}, nil
}

// Issuer is the configured issuer URL.
func (v *Verifier) Issuer() string { return v.cfg.Issuer }

// Audience is the configured audience.
func (v *Verifier) Audience() string { return v.cfg.Audience }

// RequiredScopes are the scopes every token must grant.
func (v *Verifier) RequiredScopes() []string { return slices.Clone(v.cfg.RequiredScopes) }

// Stats are counters of a Verifier.
type Stats struct {
	// KeySetFetches counts fetches of the key set, successful or not.
	KeySetFetches int
}

// Stats returns the Verifier's counters.
func (v *Verifier) Stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return Stats{KeySetFetches: v.fetches}
}

// Verify validates a bearer token and returns the caller it proves. Its
// errors wrap ErrInvalidToken, ErrInsufficientScope or
// ErrProviderUnavailable, with a reason that never contains the token.
func (v *Verifier) Verify(ctx context.Context, token string) (Principal, error) {
	tok, err := jwt.ParseSigned(token, Algorithms)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: not a signed JWT with an accepted algorithm: %v", ErrInvalidToken, err)
	}
	if len(tok.Headers) != 1 {
		return Principal{}, fmt.Errorf("%w: %d signatures, want 1", ErrInvalidToken, len(tok.Headers))
	}
	h := tok.Headers[0]
	keys, err := v.keysFor(ctx, h.KeyID, h.Algorithm)
	if err != nil {
		return Principal{}, err
	}
	var payload json.RawMessage
	verified := false
	for _, k := range keys {
		if err := tok.Claims(k, &payload); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return Principal{}, fmt.Errorf("%w: bad signature (key ID %q, alg %s)", ErrInvalidToken, h.KeyID, h.Algorithm)
	}
	var (
		std   jwt.Claims
		extra map[string]any
	)
	if err := json.Unmarshal(payload, &std); err != nil {
		return Principal{}, fmt.Errorf("%w: registered claims: %v", ErrInvalidToken, err)
	}
	if err := json.Unmarshal(payload, &extra); err != nil {
		return Principal{}, fmt.Errorf("%w: claims: %v", ErrInvalidToken, err)
	}
	return v.check(std, extra)
}

// check validates the claims of a token whose signature is good.
func (v *Verifier) check(std jwt.Claims, extra map[string]any) (Principal, error) {
	if std.Issuer != v.cfg.Issuer {
		return Principal{}, fmt.Errorf("%w: issuer %q is not %q", ErrInvalidToken, std.Issuer, v.cfg.Issuer)
	}
	if !std.Audience.Contains(v.cfg.Audience) {
		return Principal{}, fmt.Errorf("%w: audience %q does not contain %q (configure the provider to put this server's URL in aud, e.g. a Keycloak audience mapper)", ErrInvalidToken, []string(std.Audience), v.cfg.Audience)
	}
	if std.Expiry == nil {
		return Principal{}, fmt.Errorf("%w: no exp claim", ErrInvalidToken)
	}
	now := v.cfg.Now()
	if err := std.ValidateWithLeeway(jwt.Expected{Time: now}, v.cfg.Leeway); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return Principal{}, fmt.Errorf("%w: expired at %s", ErrInvalidToken, std.Expiry.Time().UTC().Format(time.RFC3339))
		case errors.Is(err, jwt.ErrNotValidYet):
			return Principal{}, fmt.Errorf("%w: not valid before %s", ErrInvalidToken, std.NotBefore.Time().UTC().Format(time.RFC3339))
		}
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	id, _ := extra[v.cfg.IdentityClaim].(string)
	if id == "" || len(id) > maxIdentityBytes || strings.ContainsFunc(id, unicode.IsControl) {
		return Principal{}, fmt.Errorf("%w: claim %q is not a non-empty string of at most %d printable bytes (set MCP_OAUTH_IDENTITY_CLAIM to a claim the provider sends)", ErrInvalidToken, v.cfg.IdentityClaim, maxIdentityBytes)
	}
	p := Principal{Identity: id, Scopes: scopes(extra), Expiry: std.Expiry.Time()}
	var missing []string
	for _, s := range v.cfg.RequiredScopes {
		if !slices.Contains(p.Scopes, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return p, fmt.Errorf("%w: %q lacks scope %s", ErrInsufficientScope, id, strings.Join(missing, " "))
	}
	return p, nil
}

// scopes reads "scope" (a space-separated string) and "scp" (a string or a
// list of strings).
func scopes(claims map[string]any) []string {
	var out []string
	add := func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, strings.Fields(v)...)
		case []any:
			for _, s := range v {
				if s, ok := s.(string); ok {
					out = append(out, strings.Fields(s)...)
				}
			}
		}
	}
	add(claims["scope"])
	add(claims["scp"])
	slices.Sort(out)
	return slices.Compact(out)
}

// Fingerprint names a token in logs without revealing it: "sha256:" and
// the first 8 hex digits of its SHA-256 ("none" for an empty token).
func Fingerprint(token string) string {
	if token == "" {
		return "none"
	}
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:4])
}
