package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Redacted stands in for every secret the dashboard would otherwise show.
const Redacted = "[REDACTED]"

// Formatter shows task payloads and results in asynqmon as compact JSON,
// key order kept, with secrets replaced by [Redacted] (see [Redact]). It
// implements asynqmon's PayloadFormatter and ResultFormatter.
type Formatter struct{}

// FormatPayload implements asynqmon.PayloadFormatter.
func (Formatter) FormatPayload(_ string, payload []byte) string { return Redact(payload) }

// FormatResult implements asynqmon.ResultFormatter.
func (Formatter) FormatResult(_ string, result []byte) string { return Redact(result) }

// Redact returns data, a task payload or result, as compact JSON in which:
//
//   - the value of every secret key (password, token, auth_token,
//     Authorization, api_key, client_secret, cookie, credentials, … in any
//     case, with or without _ or -) is [Redacted], whatever its type; null
//     stays null;
//   - inside other strings, "Authorization: …" values, "Bearer …" tokens,
//     "password=…"-like pairs and the password of a URL are [Redacted].
//
// Data that is not JSON is not shown at all, only its length: without
// structure, nothing tells its secrets apart. Empty data is "".
func Redact(data []byte) string {
	if len(bytes.TrimSpace(data)) == 0 {
		return ""
	}
	if !json.Valid(data) {
		return notJSON(len(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	w := &redactWriter{}
	w.enc = json.NewEncoder(&w.buf)
	w.enc.SetEscapeHTML(false) // readable: <, > and & as themselves
	if err := w.value(dec, false); err != nil {
		return notJSON(len(data))
	}
	return w.buf.String()
}

// notJSON is what Redact shows for data that is not JSON.
func notJSON(n int) string { return fmt.Sprintf("(%d bytes, not JSON: hidden)", n) }

// redactWriter re-encodes a JSON value token by token, so that key order
// and number literals stay as they were.
type redactWriter struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// value copies the next value of dec; secret says it is the value of a
// secret key and is replaced as a whole.
func (w *redactWriter) value(dec *json.Decoder, secret bool) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if secret {
		if tok == nil {
			w.buf.WriteString("null")
			return nil
		}
		if d, ok := tok.(json.Delim); ok {
			if err := skip(dec, d); err != nil {
				return err
			}
		}
		return w.str(Redacted)
	}
	switch v := tok.(type) {
	case json.Delim:
		return w.container(dec, v)
	case string:
		return w.str(redactText(v))
	case json.Number:
		w.buf.WriteString(v.String())
	case bool:
		fmt.Fprint(&w.buf, v)
	case nil:
		w.buf.WriteString("null")
	default:
		return fmt.Errorf("web: unexpected JSON token %T", tok)
	}
	return nil
}

// container copies an object or array whose opening delimiter was read.
func (w *redactWriter) container(dec *json.Decoder, open json.Delim) error {
	w.buf.WriteByte(byte(open))
	for i := 0; dec.More(); i++ {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		secret := false
		if open == '{' {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, ok := tok.(string)
			if !ok {
				return fmt.Errorf("web: object key is %T", tok)
			}
			if err := w.str(key); err != nil {
				return err
			}
			w.buf.WriteByte(':')
			secret = IsSecretKey(key)
		}
		if err := w.value(dec, secret); err != nil {
			return err
		}
	}
	tok, err := dec.Token() // the closing delimiter
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return fmt.Errorf("web: unexpected JSON token %v", tok)
	}
	w.buf.WriteByte(byte(d))
	return nil
}

// str writes s as a JSON string.
func (w *redactWriter) str(s string) error {
	if err := w.enc.Encode(s); err != nil {
		return err
	}
	w.buf.Truncate(w.buf.Len() - 1) // Encode's newline
	return nil
}

// skip consumes the rest of an object or array whose opening delimiter was
// read.
func skip(dec *json.Decoder, open json.Delim) error {
	for depth := 1; depth > 0; {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}

// IsSecretKey reports whether a JSON key names a secret. Case, "_", "-"
// and other punctuation are ignored: auth_token, authToken and
// X-Auth-Token are one key.
func IsSecretKey(key string) bool {
	k := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return -1
	}, key)
	for _, word := range secretWords {
		if strings.Contains(k, word) {
			return true
		}
	}
	return strings.HasSuffix(k, "token") || strings.HasSuffix(k, "tokens") || k == "pwd" || k == "auth"
}

// secretWords make a key secret wherever they occur in it (normalized).
var secretWords = []string{
	"password", "passwd", "passphrase", "secret", "authorization",
	"apikey", "privatekey", "cookie", "credential",
}

// textRules redact secrets inside string values, in order.
var textRules = []struct {
	re   *regexp.Regexp
	repl string
}{
	// Authorization: Bearer abc, authorization='Basic xyz', "Authorization":"Token t"
	{regexp.MustCompile(`(?i)(\bauthorization["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|digest|token|negotiate)\s+)?[^\s"',;]+`), "${1}" + Redacted},
	// a bare bearer token
	{regexp.MustCompile(`(?i)\b(bearer\s+)[a-z0-9\-._~+/]+=*`), "${1}" + Redacted},
	// password=x, "api_key": "x", access_token=x&…, client-secret: 'x'
	{regexp.MustCompile(`(?i)(\b[a-z0-9_\-]*(?:password|passwd|secret|token|api[_\-]?key)["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s&,;"'}\]]+)`), "${1}" + Redacted},
	// the password of a URL: redis://:pw@host, https://user:pw@host
	{regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*:)[^/\s@]+@`), "${1}" + Redacted + "@"},
}

// redactText redacts the secrets textRules find in s.
func redactText(s string) string {
	for _, r := range textRules {
		s = r.re.ReplaceAllString(s, r.repl)
	}
	return s
}
