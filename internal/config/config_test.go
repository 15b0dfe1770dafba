package config_test

import (
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
