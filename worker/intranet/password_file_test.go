package intranet_test

import (
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// TestPasswordFileReadAtEachAuth: a rewritten password file takes effect at
// the next Authenticate, and the credentials fingerprint follows it.
func TestPasswordFileReadAtEachAuth(t *testing.T) {
	sim, err := simulator.New(simulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "password")
	write := func(pw string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const wrong = "not-the-sim-password"
	write(wrong)
	c, err := intranet.New(intranet.Config{BaseURL: srv.URL, Username: simulator.DefaultUsername, PasswordFile: file})
	if err != nil {
		t.Fatal(err)
	}
	wrongFP := c.CredentialsFingerprint()
	if wrongFP != intranet.CredentialsFingerprint(simulator.DefaultUsername, wrong) || strings.Contains(wrongFP, wrong) {
		t.Errorf("fingerprint %q: not that of the file's password", wrongFP)
	}
	if _, err := c.Authenticate(t.Context()); !errors.Is(err, intranet.ErrInvalidCredentials) || strings.Contains(err.Error(), wrong) {
		t.Fatalf("Authenticate with the wrong password in the file: %v", err)
	}

	write(simulator.DefaultPassword)
	rightFP := c.CredentialsFingerprint()
	if rightFP == wrongFP || rightFP != intranet.CredentialsFingerprint(simulator.DefaultUsername, simulator.DefaultPassword) {
		t.Errorf("fingerprint after the rewrite = %q (before %q)", rightFP, wrongFP)
	}
	if _, err := c.Authenticate(t.Context()); err != nil {
		t.Fatalf("Authenticate after fixing the file: %v", err)
	}

	// A file that disappears: this client's credentials are unusable, a
	// refusal of its own (no request sent), with a fingerprint of its own.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	calls := sim.Stats().AuthCalls
	_, err = c.Authenticate(t.Context())
	if !errors.Is(err, intranet.ErrInvalidCredentials) || !strings.Contains(err.Error(), "INTRANET_PASSWORD_FILE") {
		t.Errorf("Authenticate without the file: %v", err)
	}
	if sim.Stats().AuthCalls != calls {
		t.Error("an auth request was sent without a password")
	}
	if fp := c.CredentialsFingerprint(); fp == rightFP || fp == wrongFP || !strings.HasPrefix(fp, "sha256:") {
		t.Errorf("fingerprint of a missing file = %q", fp)
	}
}

func TestPasswordFileValidation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(file, []byte(secretPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := intranet.New(intranet.Config{BaseURL: "http://example.com", Username: username, Password: secretPassword, PasswordFile: file})
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("Password and PasswordFile both set: %v", err)
	}
	_, err = intranet.New(intranet.Config{BaseURL: "http://example.com", Username: username, PasswordFile: file + ".missing"})
	if err == nil || !strings.Contains(err.Error(), "INTRANET_PASSWORD_FILE") {
		t.Errorf("missing PasswordFile: %v", err)
	}
	c, err := intranet.New(intranet.Config{BaseURL: "http://example.com", Username: username, PasswordFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.CredentialsFingerprint(), intranet.CredentialsFingerprint(username, secretPassword); got != want {
		t.Errorf("fingerprint = %q, want %q", got, want)
	}
	if intranet.CredentialsFingerprint(username, secretPassword) == intranet.CredentialsFingerprint(username+"x", secretPassword) ||
		intranet.CredentialsFingerprint(username, secretPassword) == intranet.Fingerprint(secretPassword) {
		t.Error("credentials fingerprints collide")
	}
}
