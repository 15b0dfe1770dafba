package web_test

import (
	"net/http"
	"testing"

	"github.com/mcpjobs/mcpjobs/web"
)

// request sends method to path with the given headers and answers the status.
func request(t *testing.T, s *site, method, path string, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestForeignHostRefused: without a login the dashboard answers loopback
// names only, so a page that rebinds its own name to 127.0.0.1 reads
// nothing; the health checks and metrics answer any host.
func TestForeignHostRefused(t *testing.T) {
	s := setup(t, web.Config{})
	tests := []struct {
		host, path string
		want       int
	}{
		{"evil.example:8090", "/monitoring/api/queues", http.StatusMisdirectedRequest},
		{"evil.example", "/monitoring/", http.StatusMisdirectedRequest},
		{"127.0.0.1.nip.io:8090", "/monitoring/api/queues", http.StatusMisdirectedRequest},
		{"localhost:8090", "/monitoring/api/queues", http.StatusOK},
		{"LOCALHOST.:8090", "/monitoring/api/queues", http.StatusOK},
		{"127.0.0.1:1234", "/monitoring/api/queues", http.StatusOK},
		{"[::1]:8090", "/monitoring/api/queues", http.StatusOK},
		{"evil.example", "/healthz", http.StatusOK},
		{"evil.example", "/metrics", http.StatusOK},
	}
	for _, tt := range tests {
		if got := request(t, s, http.MethodGet, tt.path, map[string]string{"Host": tt.host}); got != tt.want {
			t.Errorf("GET %s with Host %s: %d, want %d", tt.path, tt.host, got, tt.want)
		}
	}

	named := setup(t, web.Config{AllowedHosts: []string{"ops.internal:8090"}})
	if got := request(t, named, http.MethodGet, "/monitoring/api/queues", map[string]string{"Host": "ops.internal:8090"}); got != http.StatusOK {
		t.Errorf("allowed host: %d", got)
	}
	if got := request(t, named, http.MethodGet, "/monitoring/api/queues", map[string]string{"Host": "ops.internal:9999"}); got != http.StatusMisdirectedRequest {
		t.Errorf("allowed host on another port: %d", got)
	}
	withLogin := setup(t, web.Config{Username: user, Password: pass})
	if got := request(t, withLogin, http.MethodGet, "/monitoring/", map[string]string{"Host": "ops.example.com"}); got != http.StatusUnauthorized {
		t.Errorf("with a login, any host reaches the login: %d, want 401", got)
	}
}

// TestCrossSitePostRefused: a web page elsewhere cannot pause a queue,
// with or without a login; the dashboard's own pages and scripts can.
func TestCrossSitePostRefused(t *testing.T) {
	for _, cfg := range []web.Config{{}, {Username: user, Password: pass}} {
		s := setup(t, cfg)
		enqueue(t, s, "interactive", []byte(`{}`))
		pause := "/monitoring/api/queues/interactive:pause"
		auth := func(h map[string]string) map[string]string {
			if cfg.Username != "" {
				req, _ := http.NewRequest(http.MethodGet, "/", nil)
				req.SetBasicAuth(user, pass)
				h["Authorization"] = req.Header.Get("Authorization")
			}
			return h
		}
		if got := request(t, s, http.MethodPost, pause, auth(map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})); got != http.StatusForbidden {
			t.Errorf("login=%v: cross-site POST: %d, want 403", cfg.Username != "", got)
		}
		if got := request(t, s, http.MethodPost, pause, auth(map[string]string{"Origin": "https://evil.example"})); got != http.StatusForbidden {
			t.Errorf("login=%v: POST with a foreign Origin: %d, want 403", cfg.Username != "", got)
		}
		if got := request(t, s, http.MethodPost, pause, auth(map[string]string{"Sec-Fetch-Site": "same-origin"})); got != http.StatusNoContent && got != http.StatusOK {
			t.Errorf("login=%v: same-origin POST: %d, want success", cfg.Username != "", got)
		}
	}
}
