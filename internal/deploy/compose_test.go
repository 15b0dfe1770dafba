package deploy

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/mcpjobs/mcpjobs/internal/config"
)

// repoRoot is where docker-compose.yml and Dockerfile live, seen from this
// package's folder (go test runs in it).
const repoRoot = "../.."

// loadCompose loads docker-compose.yml as docker compose would, without the
// caller's environment. Paths stay as written (build context "."). The
// loader does not open secret files, so the untracked
// deploy/secrets/*.txt need not exist.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithName("mcpjobs"),
		cli.WithResolvedPaths(false),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

// service returns a service of p or stops the test.
func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q (has %v)", name, slices.Sorted(mapsKeys(p.Services)))
	}
	return s
}

func mapsKeys(m types.Services) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// hasSeq reports whether want occurs in args as consecutive elements.
func hasSeq(args []string, want ...string) bool {
	for i := 0; i+len(want) <= len(args); i++ {
		if slices.Equal(args[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"redis", "sim", "worker", "mcp"} {
		service(t, p, name)
	}

	t.Run("redis", func(t *testing.T) {
		s := service(t, p, "redis")
		if !strings.HasPrefix(s.Image, "redis:7") {
			t.Errorf("image = %q, want redis:7-…", s.Image)
		}
		if !hasSeq(s.Command, "--appendonly", "yes") {
			t.Errorf("command %q lacks --appendonly yes: jobs would not survive a Redis restart", s.Command)
		}
		if s.HealthCheck == nil || !hasSeq(s.HealthCheck.Test, "redis-cli", "ping") {
			t.Errorf("healthcheck = %+v, want a test running redis-cli ping", s.HealthCheck)
		}
		var data bool
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume && v.Source == "redis-data" && v.Target == "/data" {
				data = true
			}
		}
		if !data {
			t.Errorf("volumes = %+v, want redis-data:/data", s.Volumes)
		}
		if _, ok := p.Volumes["redis-data"]; !ok {
			t.Errorf("top-level volumes lack redis-data")
		}
	})

	t.Run("worker", func(t *testing.T) {
		s := service(t, p, "worker")
		if got := s.GetScale(); s.Deploy == nil || s.Deploy.Replicas == nil || got != 2 {
			t.Errorf("replicas = %d, want deploy: replicas: 2", got)
		}
		if len(s.Command) == 0 || s.Command[0] != "worker" {
			t.Errorf("command = %q, want it to start with worker", s.Command)
		}
		if d, ok := s.DependsOn["redis"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("depends_on redis = %+v, want condition service_healthy", d)
		}
		if _, ok := s.DependsOn["sim"]; !ok {
			t.Errorf("depends_on lacks sim")
		}
	})

	t.Run("mcp", func(t *testing.T) {
		s := service(t, p, "mcp")
		if len(s.Command) == 0 || s.Command[0] != "mcp" || !hasSeq(s.Command, "--transport", "http") {
			t.Errorf("command = %q, want mcp … --transport http", s.Command)
		}
		if len(s.Ports) == 0 {
			t.Fatalf("mcp publishes no port")
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("port %+v binds %q, want 127.0.0.1", port, port.HostIP)
			}
		}
	})

	t.Run("sim", func(t *testing.T) {
		s := service(t, p, "sim")
		if len(s.Command) == 0 || s.Command[0] != "sim" {
			t.Errorf("command = %q, want it to start with sim", s.Command)
		}
	})
}

func TestComposeBuilds(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"sim", "worker", "mcp"} {
		if service(t, p, name).Build == nil {
			t.Errorf("service %s is not built from the Dockerfile", name)
		}
	}
	for name, s := range p.Services {
		if s.Build == nil {
			continue
		}
		if s.Build.Context != "." {
			t.Errorf("service %s builds from %q, want \".\"", name, s.Build.Context)
		}
	}
}

// TestComposeEnvironment checks that every variable the built services get
// is one mcpjobs reads (internal/config), and that secrets are passed as
// files.
func TestComposeEnvironment(t *testing.T) {
	p := loadCompose(t)
	known := map[string]bool{}
	for _, v := range config.Vars {
		known[v.Name] = true
	}
	for _, name := range []string{"INTRANET_PASSWORD", "MCP_AUTH_TOKENS"} {
		if !known[name] {
			t.Fatalf("config.Vars lacks %s; update this test", name)
		}
	}
	for name, s := range p.Services {
		if s.Build == nil {
			continue
		}
		for key := range s.Environment {
			if !known[strings.TrimSuffix(key, "_FILE")] {
				t.Errorf("service %s sets %s, which mcpjobs does not read", name, key)
			}
		}
		for _, secret := range []string{"INTRANET_PASSWORD", "MCP_AUTH_TOKENS"} {
			if _, ok := s.Environment[secret]; ok {
				t.Errorf("service %s sets %s in plain text; use %s_FILE and a compose secret", name, secret, secret)
			}
		}
	}

	tests := []struct {
		service, env, secret string
	}{
		{"worker", "INTRANET_PASSWORD_FILE", "intranet_password"},
		{"mcp", "MCP_AUTH_TOKENS_FILE", "mcp_auth_tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			s := service(t, p, tt.service)
			v := s.Environment[tt.env]
			if want := "/run/secrets/" + tt.secret; v == nil || *v != want {
				t.Errorf("%s = %v, want %s", tt.env, v, want)
			}
			if !slices.ContainsFunc(s.Secrets, func(c types.ServiceSecretConfig) bool { return c.Source == tt.secret }) {
				t.Errorf("service %s does not mount secret %s", tt.service, tt.secret)
			}
			sec, ok := p.Secrets[tt.secret]
			if !ok || sec.File == "" {
				t.Fatalf("top-level secret %s missing or not from a file", tt.secret)
			}
			// The real file is untracked; its example must be in the tree.
			example := filepath.Join(repoRoot, sec.File+".example")
			if _, err := os.Stat(example); err != nil {
				t.Errorf("secret %s: no example file: %v", tt.secret, err)
			}
		})
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var from, users []string
	for line := range strings.Lines(string(b)) {
		fields := strings.Fields(line)
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			from = append(from, fields[1])
		case "USER":
			users = append(users, fields[1])
		}
	}
	text := string(b)

	tests := []struct {
		name string
		ok   bool
		want string
	}{
		{"multi-stage", len(from) >= 2, "at least two FROM lines"},
		{"static build", strings.Contains(text, "CGO_ENABLED=0"), "CGO_ENABLED=0 in the build"},
		{"non-root", len(users) > 0 && !isRoot(users[len(users)-1]), "a last USER line that is not root"},
		{"entrypoint", regexp.MustCompile(`(?m)^ENTRYPOINT \["/mcpjobs"\]`).MatchString(text), `ENTRYPOINT ["/mcpjobs"]`},
		{"ports", regexp.MustCompile(`(?m)^EXPOSE .*\b8080\b.*\b8081\b`).MatchString(text), "EXPOSE 8080 8081"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Errorf("Dockerfile: want %s (FROM %q, USER %q)", tt.want, from, users)
			}
		})
	}
}

// isRoot reports whether a USER value (user[:group]) is root.
func isRoot(user string) bool {
	u, _, _ := strings.Cut(user, ":")
	return u == "root" || u == "0"
}
