package deploy

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

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
	for _, name := range []string{"redis", "sim", "worker", "mcp", "web", "prometheus"} {
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
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= 30*time.Second {
			t.Errorf("stop_grace_period = %v, want more than the worker's 30s --shutdown-timeout", s.StopGracePeriod)
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

	t.Run("web", func(t *testing.T) {
		s := service(t, p, "web")
		if len(s.Command) == 0 || s.Command[0] != "web" || !hasSeq(s.Command, "--addr", "0.0.0.0:8090") {
			t.Errorf("command = %q, want web --addr 0.0.0.0:8090", s.Command)
		}
		if !hasSeq(s.Command, "--prometheus-addr", "http://prometheus:9090") {
			t.Errorf("command = %q, want --prometheus-addr http://prometheus:9090 for the dashboard's metrics view", s.Command)
		}
		if slices.Contains(s.Command, "--insecure-no-auth") {
			t.Errorf("command = %q: the dashboard must keep its login", s.Command)
		}
		if v := s.Environment["WEB_USERNAME"]; v == nil || *v == "" {
			t.Errorf("WEB_USERNAME is not set: web on 0.0.0.0 would refuse to start")
		}
		if d, ok := s.DependsOn["redis"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("depends_on redis = %+v, want condition service_healthy", d)
		}
		if len(s.Ports) == 0 {
			t.Fatalf("web publishes no port")
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" || port.Target != 8090 {
				t.Errorf("port %+v, want 127.0.0.1:…:8090", port)
			}
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		s := service(t, p, "prometheus")
		if !strings.HasPrefix(s.Image, "prom/prometheus:v") {
			t.Errorf("image = %q, want a pinned prom/prometheus:v…", s.Image)
		}
		var config bool
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && filepath.Clean(v.Source) == "deploy/prometheus.yml" && v.Target == "/etc/prometheus/prometheus.yml" {
				config = v.ReadOnly
			}
		}
		if !config {
			t.Errorf("volumes = %+v, want ./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro", s.Volumes)
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("port %+v binds %q, want 127.0.0.1", port, port.HostIP)
			}
		}
	})

	t.Run("metrics ports", func(t *testing.T) {
		for _, name := range []string{"worker", "mcp"} {
			if s := service(t, p, name); !hasSeq(s.Command, "--metrics-addr", "0.0.0.0:9090") {
				t.Errorf("%s command = %q, want --metrics-addr 0.0.0.0:9090 (deploy/prometheus.yml scrapes %s:9090)", name, s.Command, name)
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
	for _, name := range []string{"sim", "worker", "mcp", "web"} {
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
	for _, name := range []string{"INTRANET_PASSWORD", "MCP_AUTH_TOKENS", "WEB_PASSWORD"} {
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
		for _, secret := range []string{"INTRANET_PASSWORD", "MCP_AUTH_TOKENS", "WEB_PASSWORD"} {
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
		{"web", "WEB_PASSWORD_FILE", "web_password"},
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

// TestPrometheusConfig checks that deploy/prometheus.yml scrapes web, mcp
// and every worker replica where docker-compose.yml serves their metrics.
func TestPrometheusConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("deploy/prometheus.yml: %v", err)
	}
	static := map[string][]string{}
	var workerDNS bool
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %s, want /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			static[sc.JobName] = append(static[sc.JobName], st.Targets...)
		}
		for _, d := range sc.DNSSDConfigs {
			if slices.Equal(d.Names, []string{"worker"}) && d.Type == "A" && d.Port == 9090 {
				workerDNS = true
			}
		}
	}
	if !slices.Contains(static["web"], "web:8090") {
		t.Errorf("job web targets %q, want web:8090", static["web"])
	}
	if !slices.Contains(static["mcp"], "mcp:9090") {
		t.Errorf("job mcp targets %q, want mcp:9090", static["mcp"])
	}
	if !workerDNS {
		t.Errorf("no dns_sd_configs {names: [worker], type: A, port: 9090}: worker replicas would not all be scraped")
	}
	for _, targets := range static {
		if slices.ContainsFunc(targets, func(t string) bool { return strings.HasPrefix(t, "worker:") }) {
			t.Errorf("a static worker target scrapes one replica at random; use dns_sd_configs")
		}
	}
	if _, ok := loadCompose(t).Services["prometheus"]; !ok {
		t.Errorf("docker-compose.yml has no prometheus service to run this config")
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

// TestComposeHealthChecks: every service has a health check, and those of
// the distroless mcpjobs services probe with the binary itself.
func TestComposeHealthChecks(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 || s.HealthCheck.Disable {
			t.Errorf("%s has no health check", name)
			continue
		}
		if s.Build != nil && !hasSeq(s.HealthCheck.Test, "CMD", "/mcpjobs", "health") {
			t.Errorf("%s (built from the Dockerfile, distroless) checks with %q; want CMD /mcpjobs health URL", name, s.HealthCheck.Test)
		}
	}
	if d := service(t, p, "worker").DependsOn["sim"]; d.Condition != types.ServiceConditionHealthy {
		t.Errorf("worker depends_on sim = %+v, want service_healthy", d)
	}
}

// TestREADMEDockerSteps: the README's Docker steps create every secret file
// compose needs and name every published service.
func TestREADMEDockerSteps(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t)
	for name, sec := range p.Secrets {
		file := filepath.Base(sec.File)
		if !regexp.MustCompile(`cp deploy/secrets/` + regexp.QuoteMeta(file) + `\.example\s+deploy/secrets/` + regexp.QuoteMeta(file)).Match(readme) {
			t.Errorf("README's Docker steps do not create %s (secret %s)", sec.File, name)
		}
	}
	for name, s := range p.Services {
		for _, port := range s.Ports {
			if want := "127.0.0.1:" + port.Published; !strings.Contains(string(readme), want) {
				t.Errorf("README does not say where %s is published (%s)", name, want)
			}
		}
	}
}
