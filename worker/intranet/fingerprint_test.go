package intranet_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

func TestFingerprint(t *testing.T) {
	if got := intranet.Fingerprint(""); got != "none" {
		t.Errorf("Fingerprint(\"\") = %q", got)
	}
	fp := intranet.Fingerprint(secretToken)
	if !strings.HasPrefix(fp, "sha256:") || len(fp) != len("sha256:")+8 || fp != intranet.Fingerprint(secretToken) {
		t.Errorf("Fingerprint = %q", fp)
	}
	if fp == intranet.Fingerprint(secretToken+"x") {
		t.Error("different secrets share a fingerprint")
	}
}

func TestTokenNeverShowsValue(t *testing.T) {
	tok := intranet.Token{Value: secretToken, IssuedAt: time.Unix(1_800_000_000, 0), ExpiresAt: time.Unix(1_800_007_200, 0)}
	hex := strings.TrimPrefix(intranet.Fingerprint(secretToken), "sha256:")
	if got := tok.String(); got != "tok:"+hex {
		t.Errorf("String() = %q, want tok:%s", got, hex)
	}
	if got := (intranet.Token{}).String(); got != "tok:none" {
		t.Errorf("empty String() = %q", got)
	}

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
		outputs = append(outputs, fmt.Sprintf(verb, tok), fmt.Sprintf(verb, &tok), fmt.Sprintf(verb, []intranet.Token{tok}))
	}
	outputs = append(outputs, fmt.Sprint(struct{ T intranet.Token }{tok}), fmt.Sprintf("%+v", struct{ T intranet.Token }{tok}))

	js, err := json.Marshal(struct{ T intranet.Token }{tok})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), intranet.Fingerprint(secretToken)) {
		t.Errorf("JSON lacks the fingerprint: %s", js)
	}
	outputs = append(outputs, string(js))

	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("t", "token", tok, "ptr", &tok, "any", any(struct{ T intranet.Token }{tok}))
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("t", "token", tok, "ptr", &tok, "any", struct{ T intranet.Token }{tok})
	if !strings.Contains(buf.String(), "token.fingerprint="+intranet.Fingerprint(secretToken)) {
		t.Errorf("slog output lacks the fingerprint group:\n%s", buf.String())
	}
	outputs = append(outputs, buf.String())

	for _, out := range outputs {
		assertNoSecrets(t, "output", out)
	}
}
