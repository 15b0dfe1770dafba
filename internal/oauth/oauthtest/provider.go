// Package oauthtest runs an OpenID Connect identity provider for tests: an
// httptest server with a discovery document and a key set (one RSA and one
// ECDSA P-256 key), that signs access tokens and rotates its keys on
// demand.
package oauthtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Key is a signing key of the Provider.
type Key struct {
	// ID is the key ID ("kid").
	ID string
	// Alg is the signature algorithm: RS256 or ES256.
	Alg jose.SignatureAlgorithm
	// Private is the *rsa.PrivateKey or *ecdsa.PrivateKey.
	Private crypto.Signer
}

// Public returns the key's JWK as the key set publishes it.
func (k Key) Public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Private.Public(), KeyID: k.ID, Algorithm: string(k.Alg), Use: "sig"}
}

// Provider is a running test identity provider.
type Provider struct {
	// URL is the issuer URL.
	URL string
	// Now is the clock that Token's iat, nbf and exp start from.
	// Default: time.Now.
	Now func() time.Time

	jwksRequests atomic.Int64
	mu           sync.Mutex
	generation   int
	rsaKey       Key
	ecKey        Key
	published    []Key
}

// Start starts a Provider, closed when the test ends.
func Start(t testing.TB) *Provider {
	t.Helper()
	p := &Provider{Now: time.Now}
	p.Rotate(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /realms/corp/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                p.URL,
			"jwks_uri":                              p.URL + "/protocol/openid-connect/certs",
			"authorization_endpoint":                p.URL + "/protocol/openid-connect/auth",
			"token_endpoint":                        p.URL + "/protocol/openid-connect/token",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	})
	mux.HandleFunc("GET /realms/corp/protocol/openid-connect/certs", func(w http.ResponseWriter, r *http.Request) {
		p.jwksRequests.Add(1)
		p.mu.Lock()
		set := jose.JSONWebKeySet{}
		for _, k := range p.published {
			set.Keys = append(set.Keys, k.Public())
		}
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p.URL = srv.URL + "/realms/corp"
	return p
}

// Rotate replaces both keys with new ones (new key IDs) and publishes only
// the new ones, as a provider that withdraws its old keys does.
func (p *Provider) Rotate(t testing.TB) {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.generation++
	p.rsaKey = Key{ID: fmt.Sprintf("rsa-%d", p.generation), Alg: jose.RS256, Private: rk}
	p.ecKey = Key{ID: fmt.Sprintf("ec-%d", p.generation), Alg: jose.ES256, Private: ek}
	p.published = []Key{p.rsaKey, p.ecKey}
}

// RSAKey and ECKey are the current keys.
func (p *Provider) RSAKey() Key { p.mu.Lock(); defer p.mu.Unlock(); return p.rsaKey }

// ECKey is the current ECDSA key.
func (p *Provider) ECKey() Key { p.mu.Lock(); defer p.mu.Unlock(); return p.ecKey }

// JWKSRequests counts the requests for the key set.
func (p *Provider) JWKSRequests() int { return int(p.jwksRequests.Load()) }

// Claims returns valid claims for subject sub and audience aud: iss, sub,
// aud, iat, nbf, exp (in 5 minutes) and scope "mcp".
func (p *Provider) Claims(sub, aud string) map[string]any {
	now := p.Now()
	return map[string]any{
		"iss":   p.URL,
		"sub":   sub,
		"aud":   aud,
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(5 * time.Minute).Unix(),
		"scope": "openid mcp",
	}
}

// Token signs Claims(sub, aud) with the current RSA key.
func (p *Provider) Token(t testing.TB, sub, aud string) string {
	t.Helper()
	return Sign(t, p.RSAKey(), p.Claims(sub, aud))
}

// Sign signs claims with k, naming k.ID in the header.
func Sign(t testing.TB, k Key, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader(jose.HeaderKey("kid"), k.ID)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: k.Private}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// SignHMAC signs claims with HS256 and secret, naming kid: the forgery of a
// token "signed" with a provider's public key as the HMAC secret.
func SignHMAC(t testing.TB, secret []byte, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Unsigned returns claims as an "alg": "none" token naming kid.
func Unsigned(t testing.TB, kid string, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "."
}
