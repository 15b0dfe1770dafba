package oauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mcpjobs/mcpjobs/internal/oauth"
	"github.com/mcpjobs/mcpjobs/internal/oauth/oauthtest"
)

const audience = "https://mcp.example.com/mcp"

// clock is a settable clock shared by the provider and the verifier.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

type fixture struct {
	idp   *oauthtest.Provider
	clock *clock
	v     *oauth.Verifier
}

func setup(t testing.TB, edit ...func(*oauth.Config)) *fixture {
	t.Helper()
	c := &clock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	idp := oauthtest.Start(t)
	idp.Now = c.Now
	cfg := oauth.Config{Issuer: idp.URL, Audience: audience, Now: c.Now}
	for _, e := range edit {
		e(&cfg)
	}
	v, err := oauth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{idp: idp, clock: c, v: v}
}

func TestVerifyAccepts(t *testing.T) {
	f := setup(t)
	for _, k := range []oauthtest.Key{f.idp.RSAKey(), f.idp.ECKey()} {
		t.Run(string(k.Alg), func(t *testing.T) {
			claims := f.idp.Claims("alice", audience)
			claims["aud"] = []string{"account", audience}
			p, err := f.v.Verify(t.Context(), oauthtest.Sign(t, k, claims))
			if err != nil {
				t.Fatal(err)
			}
			if p.Identity != "alice" || strings.Join(p.Scopes, " ") != "mcp openid" {
				t.Errorf("principal %+v, want alice with scopes mcp openid", p)
			}
		})
	}
	if n := f.idp.JWKSRequests(); n != 1 {
		t.Errorf("key set fetched %d times for two tokens, want 1 (cached)", n)
	}
}

func TestVerifyRefuses(t *testing.T) {
	f := setup(t)
	rk := f.idp.RSAKey()
	valid := func() map[string]any { return f.idp.Claims("alice", audience) }
	with := func(k string, v any) map[string]any {
		c := valid()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	now := f.clock.Now()
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	foreignEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(rk.Private.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	good := oauthtest.Sign(t, rk, valid())
	parts := strings.Split(good, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	payload = []byte(strings.Replace(string(payload), `"sub":"alice"`, `"sub":"admin"`, 1))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]

	tests := []struct {
		name, token string
		want        error
		why         string
	}{
		{"bad signature (foreign RSA key, known kid)", oauthtest.Sign(t, oauthtest.Key{ID: rk.ID, Alg: jose.RS256, Private: foreign}, valid()), oauth.ErrInvalidToken, `bad signature`},
		{"bad signature (foreign EC key, known kid)", oauthtest.Sign(t, oauthtest.Key{ID: f.idp.ECKey().ID, Alg: jose.ES256, Private: foreignEC}, valid()), oauth.ErrInvalidToken, `bad signature`},
		{"tampered payload (sub alice→admin)", tampered, oauth.ErrInvalidToken, `bad signature`},
		{"alg none", oauthtest.Unsigned(t, rk.ID, valid()), oauth.ErrInvalidToken, `unexpected signature algorithm "none"`},
		{"HS256 with the public key (PEM) as secret", oauthtest.SignHMAC(t, pemKey, rk.ID, valid()), oauth.ErrInvalidToken, `unexpected signature algorithm "HS256"`},
		{"HS256 with the public key (DER) as secret", oauthtest.SignHMAC(t, der, rk.ID, valid()), oauth.ErrInvalidToken, `unexpected signature algorithm "HS256"`},
		{"RS256 kid on the EC key", oauthtest.Sign(t, oauthtest.Key{ID: f.idp.ECKey().ID, Alg: jose.RS256, Private: rk.Private}, valid()), oauth.ErrInvalidToken, `unknown key ID`},
		{"wrong iss", oauthtest.Sign(t, rk, with("iss", "https://evil.example.com/realms/corp")), oauth.ErrInvalidToken, `issuer`},
		{"wrong aud", oauthtest.Sign(t, rk, with("aud", "https://other.example.com/mcp")), oauth.ErrInvalidToken, `audience`},
		{"no aud", oauthtest.Sign(t, rk, with("aud", nil)), oauth.ErrInvalidToken, `audience`},
		{"expired beyond leeway", oauthtest.Sign(t, rk, with("exp", now.Add(-oauth.DefaultLeeway-time.Second).Unix())), oauth.ErrInvalidToken, `expired`},
		{"no exp", oauthtest.Sign(t, rk, with("exp", nil)), oauth.ErrInvalidToken, `no exp`},
		{"not yet valid beyond leeway", oauthtest.Sign(t, rk, with("nbf", now.Add(oauth.DefaultLeeway+time.Second).Unix())), oauth.ErrInvalidToken, `not valid before`},
		{"no identity claim", oauthtest.Sign(t, rk, with("sub", nil)), oauth.ErrInvalidToken, `claim "sub"`},
		{"identity claim not a string", oauthtest.Sign(t, rk, with("sub", 42)), oauth.ErrInvalidToken, `sub`},
		{"identity claim with a newline", oauthtest.Sign(t, rk, with("sub", "alice\nlevel=admin")), oauth.ErrInvalidToken, `claim "sub"`},
		{"not a JWT", "opaque-token-123", oauth.ErrInvalidToken, `three parts`},
		{"empty", "", oauth.ErrInvalidToken, `empty input`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.v.Verify(t.Context(), tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("err %q does not say %q", err, tt.why)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("the error shows the token")
			}
		})
	}
	if n := f.idp.JWKSRequests(); n != 1 {
		t.Errorf("key set fetched %d times, want 1", n)
	}
}

func TestVerifyLeeway(t *testing.T) {
	f := setup(t)
	rk := f.idp.RSAKey()
	now := f.clock.Now()
	within := oauth.DefaultLeeway - time.Second
	for name, edit := range map[string]func(map[string]any){
		"expired within leeway":       func(c map[string]any) { c["exp"] = now.Add(-within).Unix() },
		"not yet valid within leeway": func(c map[string]any) { c["nbf"] = now.Add(within).Unix(); c["iat"] = now.Add(within).Unix() },
	} {
		t.Run(name, func(t *testing.T) {
			c := f.idp.Claims("alice", audience)
			edit(c)
			if _, err := f.v.Verify(t.Context(), oauthtest.Sign(t, rk, c)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestVerifyScopes(t *testing.T) {
	f := setup(t, func(c *oauth.Config) { c.RequiredScopes = []string{"mcp", "jobs.write"} })
	rk := f.idp.RSAKey()
	tests := []struct {
		name  string
		scope map[string]any
		want  error
	}{
		{"scope string with both", map[string]any{"scope": "openid mcp jobs.write"}, nil},
		{"scp list with both (Entra, Okta)", map[string]any{"scope": nil, "scp": []string{"mcp", "jobs.write"}}, nil},
		{"one missing", map[string]any{"scope": "openid mcp"}, oauth.ErrInsufficientScope},
		{"none", map[string]any{"scope": nil}, oauth.ErrInsufficientScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.idp.Claims("alice", audience)
			for k, v := range tt.scope {
				if v == nil {
					delete(c, k)
				} else {
					c[k] = v
				}
			}
			p, err := f.v.Verify(t.Context(), oauthtest.Sign(t, rk, c))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if p.Identity != "alice" {
				t.Errorf("identity %q, want alice (also with insufficient scope, to log it)", p.Identity)
			}
		})
	}
}

func TestVerifyIdentityClaim(t *testing.T) {
	f := setup(t, func(c *oauth.Config) { c.IdentityClaim = "preferred_username" })
	c := f.idp.Claims("0b7e-uuid", audience)
	c["preferred_username"] = "alice"
	p, err := f.v.Verify(t.Context(), oauthtest.Sign(t, f.idp.RSAKey(), c))
	if err != nil || p.Identity != "alice" {
		t.Fatalf("identity %q, %v; want alice", p.Identity, err)
	}
}

// An unknown key ID fetches the key set once, then is refused; until the
// refetch interval passes, unknown key IDs fetch nothing.
func TestUnknownKeyIDRefetchesOnce(t *testing.T) {
	f := setup(t)
	if _, err := f.v.Verify(t.Context(), f.idp.Token(t, "alice", audience)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(oauth.DefaultRefetchInterval)
	forged := oauthtest.Sign(t, oauthtest.Key{ID: "no-such-kid", Alg: jose.RS256, Private: f.idp.RSAKey().Private}, f.idp.Claims("alice", audience))
	for i := range 3 {
		if _, err := f.v.Verify(t.Context(), forged); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Fatalf("attempt %d: err %v, want ErrInvalidToken", i, err)
		}
		if n := f.idp.JWKSRequests(); n != 2 {
			t.Fatalf("after %d unknown-kid tokens: %d key set fetches, want 2 (the first, and one refetch)", i+1, n)
		}
	}
	if got := f.v.Stats().KeySetFetches; got != 2 {
		t.Errorf("Stats().KeySetFetches = %d, want 2", got)
	}
}

// A flood of tokens with random key IDs, from many goroutines at once,
// costs the provider at most one fetch per refetch interval.
func TestUnknownKeyIDFloodIsBounded(t *testing.T) {
	f := setup(t)
	if _, err := f.v.Verify(t.Context(), f.idp.Token(t, "alice", audience)); err != nil {
		t.Fatal(err)
	}
	claims := f.idp.Claims("mallory", audience)
	priv := f.idp.RSAKey().Private
	tokens := make([]string, 50)
	for i := range tokens {
		tokens[i] = oauthtest.Sign(t, oauthtest.Key{ID: "kid-" + rand.Text(), Alg: jose.RS256, Private: priv}, claims)
	}
	flood := func() {
		var wg sync.WaitGroup
		for range 4 {
			for _, tok := range tokens {
				wg.Go(func() {
					if _, err := f.v.Verify(t.Context(), tok); !errors.Is(err, oauth.ErrInvalidToken) {
						t.Errorf("err %v, want ErrInvalidToken", err)
					}
				})
			}
		}
		wg.Wait()
	}
	flood()
	if n := f.idp.JWKSRequests(); n != 1 {
		t.Fatalf("a flood within the refetch interval fetched the key set %d times in all, want 1", n)
	}
	for round := 2; round <= 4; round++ {
		f.clock.Advance(oauth.DefaultRefetchInterval)
		flood()
		if n := f.idp.JWKSRequests(); n != round {
			t.Fatalf("after %d intervals with a flood each: %d fetches, want %d (one per interval)", round-1, n, round)
		}
	}
}

// After the provider rotates its keys, tokens of the new keys are accepted
// without a restart, and tokens of the withdrawn keys are refused.
func TestKeyRotation(t *testing.T) {
	f := setup(t)
	old := f.idp.Token(t, "alice", audience)
	if _, err := f.v.Verify(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	f.idp.Rotate(t)
	f.clock.Advance(oauth.DefaultRefetchInterval)
	for _, k := range []oauthtest.Key{f.idp.RSAKey(), f.idp.ECKey()} {
		if p, err := f.v.Verify(t.Context(), oauthtest.Sign(t, k, f.idp.Claims("alice", audience))); err != nil || p.Identity != "alice" {
			t.Fatalf("token of rotated key %s: %v", k.ID, err)
		}
	}
	if n := f.idp.JWKSRequests(); n != 2 {
		t.Errorf("%d key set fetches, want 2", n)
	}
	if _, err := f.v.Verify(t.Context(), old); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Errorf("token of a withdrawn key: err %v, want ErrInvalidToken", err)
	}
}

// A key set older than KeysMaxAge is fetched again, so a withdrawn key
// stops verifying even when its key ID stays known.
func TestKeysMaxAge(t *testing.T) {
	f := setup(t)
	oldKey := f.idp.RSAKey()
	if _, err := f.v.Verify(t.Context(), oauthtest.Sign(t, oldKey, f.idp.Claims("alice", audience))); err != nil {
		t.Fatal(err)
	}
	f.idp.Rotate(t)
	f.clock.Advance(oauth.DefaultKeysMaxAge)
	old := oauthtest.Sign(t, oldKey, f.idp.Claims("alice", audience))
	if _, err := f.v.Verify(t.Context(), old); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Errorf("err %v, want ErrInvalidToken", err)
	}
	if n := f.idp.JWKSRequests(); n != 2 {
		t.Errorf("%d key set fetches, want 2", n)
	}
}

func TestProviderUnavailable(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	v, err := oauth.New(oauth.Config{Issuer: down.URL, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Refresh(t.Context()); !errors.Is(err, oauth.ErrProviderUnavailable) {
		t.Errorf("Refresh: %v, want ErrProviderUnavailable", err)
	}
	idp := oauthtest.Start(t)
	if _, err := v.Verify(t.Context(), idp.Token(t, "alice", audience)); !errors.Is(err, oauth.ErrProviderUnavailable) {
		t.Errorf("Verify: %v, want ErrProviderUnavailable", err)
	}
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	idp := oauthtest.Start(t)
	v, err := oauth.New(oauth.Config{Issuer: idp.URL + "/", Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	err = v.Refresh(t.Context())
	if !errors.Is(err, oauth.ErrProviderUnavailable) || !strings.Contains(err.Error(), "names issuer") {
		t.Errorf("Refresh: %v, want ErrProviderUnavailable naming the issuer mismatch", err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  oauth.Config
		want string
	}{
		{"no issuer", oauth.Config{Audience: audience}, "MCP_OAUTH_ISSUER"},
		{"no audience", oauth.Config{Issuer: "https://sso.example.com/realms/corp"}, "MCP_OAUTH_AUDIENCE"},
		{"plain http issuer", oauth.Config{Issuer: "http://sso.example.com/realms/corp", Audience: audience}, "use https"},
		{"not a URL", oauth.Config{Issuer: "sso.example.com", Audience: audience}, "http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := oauth.New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want one naming %q", err, tt.want)
			}
		})
	}
	if _, err := oauth.New(oauth.Config{Issuer: "http://127.0.0.1:8180/realms/dev", Audience: audience}); err != nil {
		t.Errorf("http on loopback: %v", err)
	}
}

func TestFingerprint(t *testing.T) {
	if got := oauth.Fingerprint("secret-token"); !strings.HasPrefix(got, "sha256:") || len(got) != len("sha256:")+8 || strings.Contains(got, "secret") {
		t.Errorf("Fingerprint = %q", got)
	}
	if got := oauth.Fingerprint(""); got != "none" {
		t.Errorf("Fingerprint(\"\") = %q, want none", got)
	}
}

// FuzzVerify: no input panics the verifier, and only tokens the provider
// signed are accepted.
func FuzzVerify(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("")
	fx := setup(f)
	f.Fuzz(func(t *testing.T, token string) {
		if _, err := fx.v.Verify(t.Context(), token); err == nil {
			t.Fatalf("a token the test provider did not sign was accepted: %q", token)
		}
	})
}
