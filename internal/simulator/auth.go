package simulator

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// tokenEntry is one issued token, stored under the SHA-256 of the token.
type tokenEntry struct {
	account string
	expires time.Time
}

// authRequest is the body of POST /auth/token.
type authRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// authResult is the data of a successful auth call.
type authResult struct {
	Token     string `json:"token"`
	ExpiresIn int64  `json:"expires_in"` // seconds
}

// serveAuth answers POST /auth/token.
func (s *Simulator) serveAuth(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.stats.call(OpAuth)
	s.stats.add(&s.stats.authCalls)
	log := s.log.With(slog.String("operation", OpAuth))

	_, authLatency := s.latencies()
	if err := sleepCtx(r.Context(), authLatency); err != nil {
		log.Debug("sim: client went away during latency", slog.Any("error", err))
		return
	}
	if s.Faults().AuthDown {
		s.stats.add(&s.stats.faultsInjected)
		log.Debug("sim: fault injected", slog.String("fault", "auth_down"), slog.Int("status", http.StatusServiceUnavailable))
		http.Error(w, "503 Service Unavailable: the auth service is down (simulated)", http.StatusServiceUnavailable)
		return
	}

	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	var req authRequest
	var data any
	bizErr := decodeBody(r, &req)
	if bizErr == nil {
		if s.checkPassword(req.Username, req.Password) {
			data = s.issueToken(req.Username)
		} else {
			s.stats.add(&s.stats.authFailures)
			bizErr = &Error{Code: CodeInvalidCredentials, Message: "invalid credentials"}
		}
	}
	code, msg := CodeOK, "success"
	if bizErr != nil {
		code, msg = bizErr.Code, bizErr.Message
	}
	code = s.writeEnvelope(w, http.StatusOK, code, msg, data)
	attrs := []any{slog.Int("code", code), slog.Duration("duration", time.Since(start)), slog.String("username", req.Username)}
	if res, ok := data.(authResult); ok {
		attrs = append(attrs, slog.String("token_fp", fingerprint(res.Token)))
	}
	log.Debug("sim: call", attrs...)
}

// checkPassword reports whether username exists with password, comparing in
// constant time.
func (s *Simulator) checkPassword(username, password string) bool {
	want, ok := s.cfg.Accounts[username]
	if !ok {
		// Compare anyway so that unknown users cost the same time.
		subtle.ConstantTimeCompare([]byte(password), []byte(password))
		return false
	}
	return subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1
}

// issueToken makes a new token for account and ends every earlier token of
// that account (one live token per account).
func (s *Simulator) issueToken(account string) authResult {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (Go 1.24+)
	token := base64.RawURLEncoding.EncodeToString(b)
	h := tokenHash(token)

	s.authMu.Lock()
	if old, ok := s.current[account]; ok {
		delete(s.tokens, old)
	}
	s.tokens[h] = tokenEntry{account: account, expires: s.now().Add(s.cfg.TokenTTL)}
	s.current[account] = h
	s.authMu.Unlock()

	s.stats.add(&s.stats.tokensIssued)
	return authResult{Token: token, ExpiresIn: int64(s.cfg.TokenTTL / time.Second)}
}

// checkToken reports whether the Authorization header value carries a live
// token. The configured prefix is optional.
func (s *Simulator) checkToken(header string) bool {
	token := strings.TrimSpace(header)
	if p := s.cfg.TokenPrefix; p != "" && len(token) > len(p) && strings.EqualFold(token[:len(p)], p) {
		token = strings.TrimSpace(token[len(p):])
	}
	if token == "" {
		return false
	}
	h := tokenHash(token)

	s.authMu.Lock()
	defer s.authMu.Unlock()
	e, ok := s.tokens[h]
	if !ok {
		return false
	}
	if !s.now().Before(e.expires) {
		delete(s.tokens, h)
		if s.current[e.account] == h {
			delete(s.current, e.account)
		}
		return false
	}
	return true
}

// ExpireTokens ends every token now, as POST /sim/expire does.
func (s *Simulator) ExpireTokens() { s.expireTokens() }

// expireTokens ends every token and returns how many were still live.
func (s *Simulator) expireTokens() int {
	now := s.now()
	s.authMu.Lock()
	n := 0
	for _, e := range s.tokens {
		if now.Before(e.expires) {
			n++
		}
	}
	clear(s.tokens)
	clear(s.current)
	s.authMu.Unlock()
	s.stats.add(&s.stats.expiries)
	return n
}

// tokenHash is the key a token is stored under.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return string(sum[:])
}

// fingerprint is a short, loggable identifier of a secret: the first 8 hex
// digits of its SHA-256.
func fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:4])
}
