package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/mcpjobs/mcpjobs/web"
)

// FuzzRedact: Redact never panics; it answers JSON for JSON and a fixed
// notice otherwise; every value under a secret key is replaced; and no
// string under a secret key shows up in the output unless the same text
// is also visible outside secrets.
func FuzzRedact(f *testing.F) {
	for _, seed := range []string{
		secretPayload,
		`{"auth_token":"s3cret","password":"p","nested":{"token":"t"},"h":{"Authorization":"Bearer x"}}`,
		`[{"Password":{"a":["b",{"c":"d"}]}},null,1e9,"Bearer abc"]`,
		`{"password":"[REDACTED]","x":"[REDACTED"}`,
		`{"client_secret":"\u0041BC","k":"\u0001abc"}`,
		`"token=a&password='b c'"`,
		`not json`,
		"\xff\xfe",
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out := web.Redact(data)
		if len(bytes.TrimSpace(data)) == 0 {
			if out != "" {
				t.Fatalf("Redact(blank) = %q", out)
			}
			return
		}
		if !json.Valid(data) {
			if want := fmt.Sprintf("(%d bytes, not JSON: hidden)", len(data)); out != want {
				t.Fatalf("Redact(non-JSON) = %q, want %q", out, want)
			}
			return
		}
		var in, got any
		if err := json.Unmarshal(data, &in); err != nil {
			t.Skip() // valid but beyond what Unmarshal takes (e.g. too deep)
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		checkSecretValues(t, got, out)

		var secretText, visible []string
		collect(in, false, &secretText, &visible)
		var shown []string
		collect(got, false, &shown, &shown)
		for _, s := range secretText {
			if s == "" || strings.ContainsAny(s, "[]") || strings.Contains(web.Redacted, s) || containedIn(s, visible) {
				continue // may show up legitimately
			}
			if containedIn(s, shown) {
				t.Fatalf("secret %q shows in the output:\n%s", s, out)
			}
		}
	})
}

// checkSecretValues checks that every value under a secret key is
// Redacted or null.
func checkSecretValues(t *testing.T, v any, out string) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if web.IsSecretKey(k) {
				if e != nil && e != web.Redacted {
					t.Fatalf("value of %q is %#v, want %q:\n%s", k, e, web.Redacted, out)
				}
				continue
			}
			checkSecretValues(t, e, out)
		}
	case []any:
		for _, e := range v {
			checkSecretValues(t, e, out)
		}
	}
}

// collect appends the strings of v, and the text of its keys and numbers,
// to secret when they sit under a secret key and to visible otherwise.
func collect(v any, secret bool, secretText, visible *[]string) {
	add := func(s string, secret bool) {
		if secret {
			*secretText = append(*secretText, s)
		} else {
			*visible = append(*visible, s)
		}
	}
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			add(k, secret)
			collect(e, secret || web.IsSecretKey(k), secretText, visible)
		}
	case []any:
		for _, e := range v {
			collect(e, secret, secretText, visible)
		}
	case string:
		add(v, secret)
	case float64, bool:
		add(fmt.Sprint(v), secret)
	}
}

func containedIn(s string, texts []string) bool {
	for _, t := range texts {
		if strings.Contains(t, s) {
			return true
		}
	}
	return false
}
