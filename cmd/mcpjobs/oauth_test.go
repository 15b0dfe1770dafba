package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpjobs/mcpjobs/internal/oauth/oauthtest"
	"github.com/mcpjobs/mcpjobs/internal/redistest"
)

// bearerClient connects an initialized mcp-go client that sends token.
func bearerClient(t *testing.T, url, token string) *mcpclient.Client {
	t.Helper()
	c, err := mcpclient.NewStreamableHttpClient(url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	initialize(t, c)
	return c
}

// TestDevWithIdentityProvider runs `mcpjobs dev` signed in with a test
// identity provider: a token of alice runs a job to completion through the
// worker and simulator, bob does not see it, and a caller without a token
// is pointed at the metadata naming the provider.
func TestDevWithIdentityProvider(t *testing.T) {
	idp := oauthtest.Start(t)
	redisURL := redistest.Start(t).URL
	addr, simAddr := freeAddr(t), freeAddr(t)
	stdout := &syncBuffer{}
	mcpURL := "http://" + addr + "/mcp"
	startCommand(t, map[string]string{"REDIS_URL": redisURL, "LOG_LEVEL": "warn", "MCP_OAUTH_ISSUER": idp.URL}, nil, stdout,
		"dev", "--addr", addr, "--sim-addr", simAddr, "--web-addr", freeAddr(t), "--state-dir", t.TempDir(),
		"--oauth-required-scopes", "mcp", "--oauth-identity-claim", "preferred_username")
	waitHTTP(t, "http://"+simAddr+"/sim/stats")
	waitHTTP(t, mcpURL)

	token := func(user string) string {
		c := idp.Claims("uuid-of-"+user, mcpURL)
		c["preferred_username"] = user
		return oauthtest.Sign(t, idp.ECKey(), c)
	}
	alice := bearerClient(t, mcpURL, token("alice"))
	v := callAspect(t, alice)
	checkCompletedAspect(t, v)

	bob := bearerClient(t, mcpURL, token("bob"))
	res, err := bob.CallTool(t.Context(), mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: "list_jobs", Arguments: map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(res.Content); bytes.Contains(b, []byte(v.JobID)) {
		t.Errorf("bob's list_jobs shows alice's job: %s", b)
	}

	resp, err := http.Post(mcpURL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	metadata := "http://" + addr + "/.well-known/oauth-protected-resource/mcp"
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+metadata+`"`) {
		t.Errorf("without a token: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, err = http.Get(metadata)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"authorization_servers":["`+idp.URL+`"]`) || !strings.Contains(string(body), `"resource":"`+mcpURL+`"`) {
		t.Errorf("metadata: %s", body)
	}
	if out := stdout.String(); !strings.Contains(out, idp.URL) {
		t.Errorf("dev banner does not name the identity provider:\n%s", out)
	}
}

// Beyond loopback, the resource URL cannot be guessed: MCP_PUBLIC_URL is
// required.
func TestMCPOAuthNeedsPublicURL(t *testing.T) {
	var stderr bytes.Buffer
	code := run(t.Context(), []string{"mcp", "--transport", "http", "--addr", "0.0.0.0:0"}, nil, io.Discard, &stderr,
		envFunc(map[string]string{"MCP_OAUTH_ISSUER": "https://sso.example.com/realms/corp"}))
	if code != 1 || !strings.Contains(stderr.String(), "MCP_PUBLIC_URL") {
		t.Errorf("exit %d:\n%s", code, stderr.String())
	}
}
