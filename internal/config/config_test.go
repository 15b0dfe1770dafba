package config_test

import (
	"reflect"
	"testing"

	"github.com/mcpjobs/mcpjobs/internal/config"
)

// TestPasswordFilePassedThrough: INTRANET_PASSWORD_FILE reaches the client
// as a path (it re-reads the file at each auth call); INTRANET_PASSWORD
// wins when both are set.
func TestPasswordFilePassedThrough(t *testing.T) {
	for _, tt := range []struct {
		env              map[string]string
		wantPW, wantFile string
	}{
		{env: map[string]string{"INTRANET_PASSWORD_FILE": "/run/secrets/pw"}, wantFile: "/run/secrets/pw"},
		{env: map[string]string{"INTRANET_PASSWORD": "pw"}, wantPW: "pw"},
		{env: map[string]string{"INTRANET_PASSWORD": "pw", "INTRANET_PASSWORD_FILE": "/run/secrets/pw"}, wantPW: "pw"},
	} {
		c, err := config.FromEnv(func(k string) string { return tt.env[k] })
		if err != nil {
			t.Fatal(err)
		}
		if c.Intranet.Password != tt.wantPW || c.Intranet.PasswordFile != tt.wantFile {
			t.Errorf("env %v: Password set %v, PasswordFile %q; want %v, %q", tt.env,
				c.Intranet.Password != "", c.Intranet.PasswordFile, tt.wantPW != "", tt.wantFile)
		}
	}
}

func TestMCPOAuth(t *testing.T) {
	env := map[string]string{
		"MCP_PUBLIC_URL":            "https://mcpjobs.example.com/mcp",
		"MCP_OAUTH_ISSUER":          "https://sso.example.com/realms/corp",
		"MCP_OAUTH_IDENTITY_CLAIM":  "email",
		"MCP_OAUTH_REQUIRED_SCOPES": " mcp, jobs.write  extra ",
	}
	c, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := config.MCPOAuth{Issuer: env["MCP_OAUTH_ISSUER"], IdentityClaim: "email", RequiredScopes: []string{"mcp", "jobs.write", "extra"}}
	if c.MCPPublicURL != env["MCP_PUBLIC_URL"] || !reflect.DeepEqual(c.MCPOAuth, want) {
		t.Errorf("MCPPublicURL %q, MCPOAuth %+v; want %+v", c.MCPPublicURL, c.MCPOAuth, want)
	}
}
