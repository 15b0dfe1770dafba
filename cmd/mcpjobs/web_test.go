package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/web"
)

// newTestApp is the app a subcommand gets, with env as its environment.
func newTestApp(t *testing.T, name string, env map[string]string, stderr io.Writer) *app {
	t.Helper()
	a, err := newApp(name, nil, io.Discard, stderr, envFunc(env))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestWebRefusesExposedAddressWithoutLogin(t *testing.T) {
	// No Redis is needed: the address is checked before connecting.
	env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "LOG_LEVEL": "error"}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no login", nil, []string{"--addr", "0.0.0.0:0"}, "WEB_USERNAME and WEB_PASSWORD"},
		{"all interfaces", nil, []string{"--addr", ":0"}, "WEB_USERNAME and WEB_PASSWORD"},
		{"username only", map[string]string{"WEB_USERNAME": "op"}, []string{"--addr", "0.0.0.0:0"}, "set both"},
		{"password only on loopback", map[string]string{"WEB_PASSWORD": "pw"}, nil, "set both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := map[string]string{}
			for k, v := range env {
				e[k] = v
			}
			for k, v := range tt.env {
				e[k] = v
			}
			err := runWeb(t.Context(), newTestApp(t, "web", e, io.Discard), tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("runWeb %v: %v, want an error about %q", tt.args, err, tt.want)
			}
		})
	}

	t.Run("insecure-no-auth passes the check", func(t *testing.T) {
		err := runWeb(t.Context(), newTestApp(t, "web", env, io.Discard), []string{"--addr", "0.0.0.0:0", "--insecure-no-auth"})
		if err == nil || !strings.Contains(err.Error(), "redis does not answer") {
			t.Errorf("runWeb: %v, want it to get as far as Redis", err)
		}
	})

	t.Run("dev", func(t *testing.T) {
		var g errgroup.Group
		_, err := startWeb(t.Context(), newTestApp(t, "dev", env, io.Discard), nil, "0.0.0.0:0", &g)
		if err == nil || !strings.Contains(err.Error(), "WEB_USERNAME and WEB_PASSWORD") {
			t.Errorf("startWeb: %v, want a refusal", err)
		}
	})
}

func TestWebServes(t *testing.T) {
	redisURL := redistest.Start(t).URL
	addr := freeAddr(t)
	pwFile := filepath.Join(t.TempDir(), "web_password")
	if err := os.WriteFile(pwFile, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REDIS_URL": redisURL, "WEB_USERNAME": "op", "WEB_PASSWORD_FILE": pwFile, "LOG_LEVEL": "warn"}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	stderr := &syncBuffer{}
	a := newTestApp(t, "web", env, stderr)
	go func() { done <- runWeb(ctx, a, []string{"--addr", addr, "--read-only"}) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("runWeb: %v\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Errorf("runWeb did not stop")
		}
	}()
	waitHTTP(t, "http://"+addr+"/healthz")

	tests := []struct {
		path, user, pass string
		want             int
	}{
		{"/healthz", "", "", http.StatusOK},
		{"/readyz", "", "", http.StatusOK},
		{"/metrics", "", "", http.StatusOK},
		{"/monitoring/", "", "", http.StatusUnauthorized},
		{"/monitoring/", "op", "nope", http.StatusUnauthorized},
		{"/monitoring/", "op", "pw", http.StatusOK},
		{"/monitoring/api/queues", "op", "pw", http.StatusOK},
	}
	for _, tt := range tests {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+tt.path, nil)
		if tt.user != "" {
			req.SetBasicAuth(tt.user, tt.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s as %q: %d, want %d", tt.path, tt.user, resp.StatusCode, tt.want)
		}
	}
}

func TestStartWebForDev(t *testing.T) {
	srv := redistest.Start(t)
	a := newTestApp(t, "dev", map[string]string{"LOG_LEVEL": "warn"}, io.Discard)
	ctx, cancel := context.WithCancel(t.Context())
	g, gctx := errgroup.WithContext(ctx)
	url, err := startWeb(gctx, a, srv.Client(t), "127.0.0.1:0", g)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(url + web.RootPath + "/api/queues")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("dashboard on loopback without WEB_*: %d, want 200", resp.StatusCode)
	}
	cancel()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("serve: %v", err)
	}
}
