package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keysFor returns the cached keys that may have signed a token with key ID
// kid (any key when kid is empty) and algorithm alg. An unknown key ID, or
// a key set older than KeysMaxAge, fetches the key set again, unless the
// last fetch was less than RefetchInterval ago.
func (v *Verifier) keysFor(ctx context.Context, kid, alg string) ([]jose.JSONWebKey, error) {
	for {
		v.mu.Lock()
		cands := matching(v.keys, kid, alg)
		now := v.cfg.Now()
		fresh := !v.fetchedAt.IsZero() && now.Sub(v.fetchedAt) < v.cfg.KeysMaxAge
		attempted := v.attemptedAt
		mayFetch := attempted.IsZero() || now.Sub(attempted) >= v.cfg.RefetchInterval
		fetchErr := v.fetchErr
		v.mu.Unlock()

		switch {
		case len(cands) > 0 && (fresh || !mayFetch):
			return cands, nil
		case !mayFetch && fetchErr != nil:
			return nil, fmt.Errorf("%w: %v", ErrProviderUnavailable, fetchErr)
		case !mayFetch:
			return nil, fmt.Errorf("%w: unknown key ID %q for %s (the issuer's key set, fetched %s ago, lacks it; it is fetched again at most every %s)",
				ErrInvalidToken, kid, alg, now.Sub(attempted).Round(time.Second), v.cfg.RefetchInterval)
		}
		if err := v.refresh(ctx, attempted); err != nil {
			if len(cands) > 0 {
				return cands, nil // a stale key beats none while the provider is down
			}
			return nil, err
		}
		// Look again: this fetch, or a concurrent one, changed the cache.
	}
}

// Refresh fetches the discovery document (once) and the key set now, so a
// misconfigured or unreachable provider shows at start. Its errors wrap
// ErrProviderUnavailable.
func (v *Verifier) Refresh(ctx context.Context) error {
	v.mu.Lock()
	attempted := v.attemptedAt
	v.mu.Unlock()
	if err := v.refresh(ctx, attempted); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fetchErr != nil {
		return fmt.Errorf("%w: %v", ErrProviderUnavailable, v.fetchErr)
	}
	return nil
}

// refresh fetches the key set unless another fetch has started since
// attempted (then it returns nil once that one is done). One fetch runs at
// a time; it is not cancelled with ctx, so a caller that gives up does not
// waste it for the others.
func (v *Verifier) refresh(ctx context.Context, attempted time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: waiting for the key set: %v", ErrProviderUnavailable, err)
	}
	select {
	case v.fetching <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the key set: %v", ErrProviderUnavailable, ctx.Err())
	}
	defer func() { <-v.fetching }()
	v.mu.Lock()
	if !v.attemptedAt.Equal(attempted) {
		v.mu.Unlock()
		return nil
	}
	v.attemptedAt = v.cfg.Now()
	v.fetches++
	jwksURL := v.jwksURL
	v.mu.Unlock()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultFetchTimeout)
	defer cancel()
	keys, jwksURL, err := v.fetch(fctx, jwksURL)

	v.mu.Lock()
	defer v.mu.Unlock()
	v.fetchErr = err
	if err != nil {
		v.jwksURL = "" // discover again next time: the provider may have moved it
		v.log.WarnContext(ctx, "oauth key set fetch failed", slog.String("issuer", v.cfg.Issuer), slog.Any("error", err))
		return fmt.Errorf("%w: %v", ErrProviderUnavailable, err)
	}
	v.jwksURL, v.keys, v.fetchedAt = jwksURL, keys, v.attemptedAt
	kids := make([]string, len(keys))
	for i, k := range keys {
		kids[i] = k.KeyID
	}
	v.log.InfoContext(ctx, "oauth key set fetched", slog.String("jwks_uri", jwksURL), slog.Any("key_ids", kids))
	return nil
}

// fetch discovers the key set's URL when jwksURL is empty, and fetches the
// key set.
func (v *Verifier) fetch(ctx context.Context, jwksURL string) ([]jose.JSONWebKey, string, error) {
	if jwksURL == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		discovery := strings.TrimRight(v.cfg.Issuer, "/") + "/.well-known/openid-configuration"
		if err := v.getJSON(ctx, discovery, &doc); err != nil {
			return nil, "", err
		}
		if doc.Issuer != v.cfg.Issuer {
			return nil, "", fmt.Errorf("%s names issuer %q, not %q (set MCP_OAUTH_ISSUER to exactly the provider's issuer)", discovery, doc.Issuer, v.cfg.Issuer)
		}
		if doc.JWKSURI == "" {
			return nil, "", fmt.Errorf("%s has no jwks_uri", discovery)
		}
		jwksURL = doc.JWKSURI
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := v.getJSON(ctx, jwksURL, &set); err != nil {
		return nil, "", err
	}
	var keys []jose.JSONWebKey
	for i, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			v.log.DebugContext(ctx, "oauth key skipped", slog.Int("index", i), slog.Any("error", err))
			continue // a key of a kind go-jose does not know must not hide the others
		}
		if signingKey(k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, "", fmt.Errorf("%s holds no public signing key", jwksURL)
	}
	return keys, jwksURL, nil
}

// getJSON decodes the JSON document at u into dst.
func (v *Verifier) getJSON(ctx context.Context, u string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > maxDocumentBytes {
		return fmt.Errorf("GET %s: larger than %d bytes", u, maxDocumentBytes)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// signingKey reports whether k is a public asymmetric key usable for
// signatures. Symmetric ("oct") keys are dropped: HMAC is never accepted.
func signingKey(k jose.JSONWebKey) bool {
	if k.Use != "" && k.Use != "sig" {
		return false
	}
	switch k.Key.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return true
	}
	return false
}

// matching returns the keys with key ID kid (all when kid is empty) whose
// declared algorithm, if any, is alg and whose type can verify alg.
func matching(keys []jose.JSONWebKey, kid, alg string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if !keyFits(k, alg) {
			continue
		}
		out = append(out, k)
	}
	return out
}

// keyFits reports whether k's type verifies alg.
func keyFits(k jose.JSONWebKey, alg string) bool {
	switch k.Key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		return strings.HasPrefix(alg, "ES")
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}

// isLoopbackHost reports whether host is localhost or a loopback IP.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
