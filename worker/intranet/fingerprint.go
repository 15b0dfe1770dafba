package intranet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Fingerprint returns a short, stable, non-reversible name for a secret, to
// log in its place: "sha256:" followed by the first 8 hex digits of the
// secret's SHA-256. An empty secret is "none".
func Fingerprint(secret string) string {
	if secret == "" {
		return "none"
	}
	return "sha256:" + fingerprintHex(secret)
}

// CredentialsFingerprint returns a short, stable, non-reversible name for a
// username and password pair, to key per-credentials state (such as the
// shared token's auth cooldown) and to log in their place: the Fingerprint
// of a domain-separated string holding both. It reveals neither, and differs
// for any other username or password.
func CredentialsFingerprint(username, password string) string {
	return Fingerprint("mcpjobs-intranet-credentials\x00" + username + "\x00" + password)
}

func fingerprintHex(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:4])
}

// Token is an access token issued by the platform's auth endpoint.
//
// Its String, GoString, Format, LogValue and MarshalJSON methods show only a
// fingerprint of Value, never Value itself, so a Token may be printed or
// logged freely. To store or send the token, copy Value explicitly.
type Token struct {
	// Value is the opaque token that goes into the Authorization header.
	Value string
	// ExpiresAt is when the platform said the token ends (IssuedAt plus
	// expires_in). Zero if the platform did not say. The platform may end a
	// token earlier.
	ExpiresAt time.Time
	// IssuedAt is when the auth request was sent (so ExpiresAt errs early).
	IssuedAt time.Time
	// Duration is how long the auth call took.
	Duration time.Duration
}

// String returns "tok:" and the first 8 hex digits of the token's SHA-256
// ("tok:none" for an empty token).
func (t Token) String() string {
	if t.Value == "" {
		return "tok:none"
	}
	return "tok:" + fingerprintHex(t.Value)
}

// GoString is like String, with the times, for %#v.
func (t Token) GoString() string {
	return fmt.Sprintf("intranet.Token{Value:%q, ExpiresAt:%#v, IssuedAt:%#v, Duration:%d}",
		Fingerprint(t.Value), t.ExpiresAt, t.IssuedAt, int64(t.Duration))
}

// Format implements fmt.Formatter so that no verb (not even %d or %x) prints
// the token's value: %#v prints GoString, every other verb prints String.
func (t Token) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(t.GoString()))
		return
	}
	_, _ = f.Write([]byte(t.String()))
}

// LogValue implements slog.LogValuer: the fingerprint and the times.
func (t Token) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("fingerprint", Fingerprint(t.Value))}
	if !t.ExpiresAt.IsZero() {
		attrs = append(attrs, slog.Time("expires_at", t.ExpiresAt))
	}
	if !t.IssuedAt.IsZero() {
		attrs = append(attrs, slog.Time("issued_at", t.IssuedAt))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON encodes the fingerprint and the times, never the value.
// There is deliberately no UnmarshalJSON.
func (t Token) MarshalJSON() ([]byte, error) {
	v := struct {
		Fingerprint string     `json:"fingerprint"`
		ExpiresAt   *time.Time `json:"expires_at,omitempty"`
		IssuedAt    *time.Time `json:"issued_at,omitempty"`
	}{Fingerprint: Fingerprint(t.Value)}
	if !t.ExpiresAt.IsZero() {
		v.ExpiresAt = &t.ExpiresAt
	}
	if !t.IssuedAt.IsZero() {
		v.IssuedAt = &t.IssuedAt
	}
	return json.Marshal(v)
}
