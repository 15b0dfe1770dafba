package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/internal/config"
	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/internal/testwait"
)

// TestWorkerWithoutCredentialsRefusesToStart: a worker without a service
// account says what to set and exits, rather than take jobs it could only
// hand back.
func TestWorkerWithoutCredentialsRefusesToStart(t *testing.T) {
	redisURL := redistest.Start(t).URL
	for name, env := range map[string]map[string]string{
		"no username": {"INTRANET_PASSWORD": "sim-password"},
		"no password": {"INTRANET_USERNAME": "svc-mcp"},
	} {
		t.Run(name, func(t *testing.T) {
			env["REDIS_URL"] = redisURL
			env["INTRANET_BASE_URL"] = "http://127.0.0.1:1"
			var stderr bytes.Buffer
			code := run(t.Context(), []string{"worker"}, nil, io.Discard, &stderr, envFunc(env))
			if code != 1 || !strings.Contains(stderr.String(), "INTRANET_USERNAME and INTRANET_PASSWORD") {
				t.Errorf("exit %d:\n%s", code, stderr.String())
			}
		})
	}
}

// get answers the status code and body of a GET.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitStatus polls url until it answers code.
func waitStatus(t *testing.T, url string, code int, limit time.Duration) string {
	t.Helper()
	var body string
	testwait.Until(t, limit, fmt.Sprintf("%s to answer %d", url, code), func() bool {
		var got int
		got, body = get(t, url)
		return got == code
	})
	return body
}

// TestWorkerParksAndHeals: a worker whose password file is wrong parks on
// its first job (/readyz 503, the metric at 1, the job handed back); once
// the file is fixed it takes jobs again without a restart, and the job
// completes.
func TestWorkerParksAndHeals(t *testing.T) {
	redisURL := redistest.Start(t).URL
	simAddr, metricsAddr, mcpAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	startSim(t, simAddr)
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr := startCommand(t, map[string]string{"REDIS_URL": redisURL, "INTRANET_BASE_URL": "http://" + simAddr,
		"INTRANET_USERNAME": "svc-mcp", "INTRANET_PASSWORD_FILE": pwFile, "LOG_LEVEL": "warn"},
		nil, io.Discard, "worker", "--metrics-addr", metricsAddr)
	startCommand(t, map[string]string{"REDIS_URL": redisURL, "LOG_LEVEL": "warn"}, nil, io.Discard,
		"mcp", "--transport", "http", "--addr", mcpAddr)
	readyz := "http://" + metricsAddr + "/readyz"
	waitHTTP(t, "http://"+metricsAddr+"/metrics")
	waitStatus(t, readyz, http.StatusOK, 10*time.Second)
	waitHTTP(t, "http://"+mcpAddr+"/mcp")
	c := httpClient(t, "http://"+mcpAddr+"/mcp")

	callTool := func(name string, args map[string]any) jobView { t.Helper(); return callView(t, c, name, args) }
	job := callTool("coverage_aspect_analysis", map[string]any{"coverage_id": "dem_30m", "bbox": []any{116.0, 39.8, 116.01, 39.81}, "wait_seconds": 0})

	body := waitStatus(t, readyz, http.StatusServiceUnavailable, 15*time.Second)
	if !strings.Contains(body, "40101") {
		t.Errorf("/readyz while parked: %q, want the reason", body)
	}
	if _, m := get(t, "http://"+metricsAddr+"/metrics"); !strings.Contains(m, "mcpjobs_worker_credentials_refused 1") {
		t.Error("metrics lack mcpjobs_worker_credentials_refused 1 while parked")
	}
	if v := callTool("get_job", map[string]any{"job_id": job.JobID}); v.State == "completed" || v.State == "failed" {
		t.Fatalf("job ended while the only worker was parked: %+v", v)
	}

	// The secret is fixed: the worker heals by itself.
	if err := os.WriteFile(pwFile, []byte("sim-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, readyz, http.StatusOK, 20*time.Second)
	v := callTool("get_job", map[string]any{"job_id": job.JobID, "wait_seconds": 30})
	if v.State != "completed" || v.Result == nil || v.Result.Attempts != 1 {
		t.Errorf("after healing: %+v; want completed in 1 attempt (handing back uses no retry)", v)
	}
	if strings.Contains(stderr.String(), "not-the-password") || strings.Contains(stderr.String(), "sim-password") {
		t.Error("a password is in the worker's log")
	}
}

// TestMetricsTellOutcomes: a tool call whose job failed counts as
// job_failed, not ok; a platform call cut short by cancel_job counts as
// cancelled, not as a platform error.
func TestMetricsTellOutcomes(t *testing.T) {
	redisURL := redistest.Start(t).URL
	simAddr, workerMetrics, mcpAddr, mcpMetrics := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	startCommand(t, map[string]string{"LOG_LEVEL": "warn"}, nil, io.Discard, "sim", "--addr", simAddr, "--latency", "3s")
	waitHTTP(t, "http://"+simAddr+"/sim/stats")
	startCommand(t, map[string]string{"REDIS_URL": redisURL, "INTRANET_BASE_URL": "http://" + simAddr,
		"INTRANET_USERNAME": "svc-mcp", "INTRANET_PASSWORD": "sim-password", "LOG_LEVEL": "warn"},
		nil, io.Discard, "worker", "--metrics-addr", workerMetrics)
	startCommand(t, map[string]string{"REDIS_URL": redisURL, "LOG_LEVEL": "warn"}, nil, io.Discard,
		"mcp", "--transport", "http", "--addr", mcpAddr, "--metrics-addr", mcpMetrics)
	waitHTTP(t, "http://"+workerMetrics+"/metrics")
	waitHTTP(t, "http://"+mcpAddr+"/mcp")
	c := httpClient(t, "http://"+mcpAddr+"/mcp")
	callTool := func(name string, args map[string]any) jobView { t.Helper(); return callView(t, c, name, args) }

	if v := callTool("run_big_query", map[string]any{"sql": "SELEKT nonsense", "wait_seconds": 30}); v.State != "failed" {
		t.Fatalf("bad query: state %s, want failed", v.State)
	}
	slow := callTool("run_big_query", map[string]any{"sql": "SELECT region FROM landcover LIMIT 1", "wait_seconds": 0})
	testwait.Until(t, 10*time.Second, "the slow job to become active", func() bool {
		return callTool("get_job", map[string]any{"job_id": slow.JobID}).State == "active"
	})
	if v := callTool("cancel_job", map[string]any{"job_id": slow.JobID}); v.State != "cancelled" {
		t.Fatalf("cancel: state %s", v.State)
	}
	_, m := get(t, "http://"+mcpMetrics+"/metrics")
	if !strings.Contains(m, `mcpjobs_tool_calls_total{outcome="job_failed",tool="run_big_query"} 1`) {
		t.Errorf("MCP metrics do not count the failed job:\n%s", grepLines(m, "mcpjobs_tool_calls_total"))
	}
	want := `mcpjobs_platform_call_duration_seconds_count{operation="bigquery",outcome="cancelled"} 1`
	testwait.Until(t, 10*time.Second, "the worker metrics to show "+want, func() bool {
		_, m = get(t, "http://"+workerMetrics+"/metrics")
		return strings.Contains(m, want)
	})
	if strings.Contains(m, `outcome="transient"`) {
		t.Errorf("a cancelled call counted as a platform error:\n%s", grepLines(m, "mcpjobs_platform_call_duration_seconds_count"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestLogDurationsInMillis: JSON logs carry durations as milliseconds.
func TestLogDurationsInMillis(t *testing.T) {
	var b bytes.Buffer
	newLogger(&b, config.Config{LogFormat: "json"}).Info("x", slog.Duration("took", 1500*time.Microsecond))
	if !strings.Contains(b.String(), `"took_ms":1.5`) {
		t.Errorf("log line %s; want took_ms 1.5", b.String())
	}
}

// TestVersion: --version prints the version on stdout; MCP reports the same
// in serverInfo.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version", "-version"} {
		var stdout bytes.Buffer
		if code := run(t.Context(), []string{arg}, nil, &stdout, io.Discard, envFunc(nil)); code != 0 {
			t.Fatalf("%s: exit %d", arg, code)
		}
		if want := "mcpjobs " + version() + " (go"; !strings.HasPrefix(stdout.String(), want) {
			t.Errorf("%s printed %q, want %q…", arg, stdout.String(), want)
		}
	}
	if version() == "" || version() == "dev" {
		t.Errorf("version() = %q", version())
	}
	var stdout bytes.Buffer
	if code := run(t.Context(), []string{"--help"}, nil, &stdout, io.Discard, envFunc(nil)); code != 0 || !strings.Contains(stdout.String(), "commands:") {
		t.Errorf("mcpjobs --help: exit %d, stdout %q", code, stdout.String())
	}
}

// TestSubcommandsFindDevRedis: beside a running dev, `mcpjobs token status`
// works without REDIS_URL, and says which Redis it used.
func TestSubcommandsFindDevRedis(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	addr, simAddr := freeAddr(t), freeAddr(t)
	stdout := &syncBuffer{}
	env := map[string]string{"LOG_LEVEL": "info", "MCP_AUTH_TOKENS": "alice:try-secret"}
	stderr := startCommand(t, env, nil, stdout, "dev", "--addr", addr, "--sim-addr", simAddr, "--web-addr", freeAddr(t))
	waitHTTP(t, "http://"+addr+"/mcp")
	if _, err := os.Stat(filepath.Join(devStateDir, devRedisFile)); err != nil {
		t.Fatalf("dev did not record its Redis: %v\n%s", err, stderr.String())
	}
	var out, errOut syncBuffer
	if code := run(t.Context(), []string{"token", "status"}, nil, &out, &errOut, envFunc(map[string]string{"LOG_LEVEL": "info", "LOG_FORMAT": "text"})); code != 0 {
		t.Fatalf("token status beside dev: exit %d\n%s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "using the Redis of the mcpjobs dev running here") {
		t.Errorf("token status did not say which Redis it used:\n%s", errOut.String())
	}
	// The printed try-it command carries the token without printing it.
	banner := stdout.String()
	if strings.Contains(banner, "try-secret") || !strings.Contains(banner, `--header "Authorization: Bearer $(cat `) {
		t.Errorf("dev's try-it command with tokens:\n%s", banner)
	}
}

// TestHealthCommand: mcpjobs health exits 0 on a 2xx answer and 1 on
// anything else, including no answer.
func TestHealthCommand(t *testing.T) {
	redisURL := redistest.Start(t).URL
	metricsAddr := freeAddr(t)
	startCommand(t, map[string]string{"REDIS_URL": redisURL, "LOG_LEVEL": "warn"}, nil, io.Discard,
		"mcp", "--transport", "http", "--addr", freeAddr(t), "--metrics-addr", metricsAddr)
	waitHTTP(t, "http://"+metricsAddr+"/metrics")
	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{"health", "http://" + metricsAddr + "/readyz"}, 0},
		{[]string{"health", "http://" + metricsAddr + "/healthz"}, 0},
		{[]string{"health", "http://" + metricsAddr + "/nope"}, 1},
		{[]string{"health", "--timeout", "1s", "http://" + freeAddr(t) + "/readyz"}, 1},
		{[]string{"health", "not a url"}, 2},
		{[]string{"health"}, 2},
	} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), tt.args, nil, &out, &errOut, envFunc(nil)); code != tt.want {
			t.Errorf("%v: exit %d, want %d\n%s%s", tt.args, code, tt.want, out.String(), errOut.String())
		}
	}
}
