package mcp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
)

// LocalIdentity is the identity of a stdio client, and of HTTP clients when
// no tokens are configured on a loopback address.
const LocalIdentity = "local"

type identityKey struct{}

// WithIdentity returns ctx carrying the caller's identity.
func WithIdentity(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, identityKey{}, name)
}

// IdentityFrom returns the caller's identity, or "" when there is none.
func IdentityFrom(ctx context.Context) string {
	name, _ := ctx.Value(identityKey{}).(string)
	return name
}

// Tokens maps bearer tokens to identity names (MCP_AUTH_TOKENS).
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	name string
	hash [32]byte
}

// ParseTokens parses "name:token,name:token". Names and tokens must be
// non-empty; a token may not be given twice.
func ParseTokens(s string) (*Tokens, error) {
	t := &Tokens{}
	seen := map[[32]byte]bool{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, tok, ok := strings.Cut(part, ":")
		name, tok = strings.TrimSpace(name), strings.TrimSpace(tok)
		if !ok || name == "" || tok == "" {
			return nil, fmt.Errorf("mcp: MCP_AUTH_TOKENS entry %d is not name:token", i+1)
		}
		h := sha256.Sum256([]byte(tok))
		if seen[h] {
			return nil, fmt.Errorf("mcp: MCP_AUTH_TOKENS entry %d (%s) repeats a token", i+1, name)
		}
		seen[h] = true
		t.entries = append(t.entries, tokenEntry{name: name, hash: h})
	}
	return t, nil
}

// Len is the number of tokens.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.entries)
}

// lookup returns the identity of a bearer token, comparing in constant time.
func (t *Tokens) lookup(token string) (string, bool) {
	h := sha256.Sum256([]byte(token))
	name, found := "", 0
	for _, e := range t.entries {
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 {
			name, found = e.name, 1
		}
	}
	return name, found == 1
}

// bearer returns the token of an "Authorization: Bearer <token>" header; the
// scheme is case-insensitive (RFC 9110 section 11.1).
func bearer(auth string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(auth), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
