package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/internal/simulator"
)

// The identity the workload runs as over MCP.
const (
	mcpIdentity = "chaos"
	mcpToken    = "chaos-secret"
)

// The binary, built once per test run by binary.
var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary builds ./cmd/mcpjobs from the module root (go env GOMOD) into a
// temporary directory, once, and answers its path. With
// MCPJOBS_CHAOS_RACE=1 it is built with the race detector.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("go is not on PATH: %w", err)
			return
		}
		out, err := exec.Command(goTool, "env", "GOMOD").Output()
		gomod := strings.TrimSpace(string(out))
		if err != nil || gomod == "" || gomod == os.DevNull {
			buildErr = fmt.Errorf("go env GOMOD: %q, %v (run the tests inside the module)", gomod, err)
			return
		}
		if buildDir, err = os.MkdirTemp("", "mcpjobs-chaos-"); err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(buildDir, "mcpjobs")
		args := []string{"build", "-o", binPath}
		if os.Getenv("MCPJOBS_CHAOS_RACE") == "1" {
			args = append(args, "-race")
		}
		cmd := exec.Command(goTool, append(args, "./cmd/mcpjobs")...)
		cmd.Dir = filepath.Dir(gomod)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/mcpjobs: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is one mcpjobs subcommand running as its own process. Its stderr
// (JSON logs) goes to a file; the address it listens on is read from its
// "listening" log record.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	url     chan string // the first "url" of a log record, once
	done    chan struct{}
	exitErr error
}

// startProc starts `mcpjobs args...` with env added to the environment.
func startProc(t *testing.T, dir, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, logPath: filepath.Join(dir, name+".log"), url: make(chan string, 1), done: make(chan struct{})}
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Env = append(os.Environ(), append([]string{"LOG_FORMAT=json", "LOG_LEVEL=info"}, env...)...)
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start mcpjobs %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		defer close(p.done)
		r := bufio.NewReader(stderr)
		sent := false
		for {
			line, err := r.ReadBytes('\n')
			_, _ = logFile.Write(line)
			if !sent {
				var rec struct {
					URL string `json:"url"`
				}
				if json.Unmarshal(line, &rec) == nil && rec.URL != "" {
					p.url <- rec.URL
					sent = true
				}
			}
			if err != nil {
				break
			}
		}
		p.exitErr = p.cmd.Wait()
		_ = logFile.Close()
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// waitURL answers the URL the process logged that it listens on.
func (p *proc) waitURL(t *testing.T) string {
	t.Helper()
	select {
	case u := <-p.url:
		return u
	case <-p.done:
		t.Fatalf("%s exited (%v) before listening:\n%s", p.name, p.exitErr, p.tail(20))
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not log its address within 30s:\n%s", p.name, p.tail(20))
	}
	return ""
}

// alive reports whether the process is still running.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL and waits for it.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends the process with SIGTERM (SIGKILL after 20 s) unless it has
// ended; it reports an exit it did not cause.
func (p *proc) stop(t *testing.T) {
	if !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop within 20s of SIGTERM; killed", p.name)
		p.kill(t)
	}
}

// tail answers the last n lines of the process's log.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errorLines counts log records at level ERROR, by message.
func (p *proc) errorLines() map[string]int {
	out := map[string]int{}
	b, _ := os.ReadFile(p.logPath)
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Level == "ERROR" {
			out[rec.Msg]++
		}
	}
	return out
}

// clusterConfig shapes a cluster.
type clusterConfig struct {
	// workers is the number of worker processes. Default: 2.
	workers int
	// simArgs are extra `mcpjobs sim` flags.
	simArgs []string
	// workerArgs are extra `mcpjobs worker` flags; they override the
	// defaults (a flag given twice takes its last value).
	workerArgs []string
	// mcpEnv is extra environment of `mcpjobs mcp`.
	mcpEnv []string
	// sentinel runs Redis as a primary, a replica and one Sentinel
	// watching them; the processes connect through the Sentinel
	// (redis-sentinel://…?master=mcpjobs).
	sentinel bool
}

// cluster is the whole system as processes: redis-server, `mcpjobs sim`,
// workers and `mcpjobs mcp --transport http`.
type cluster struct {
	cfg     clusterConfig
	dir     string
	redis   *redistest.Server // the (first) primary
	replica *redistest.Server // with sentinel: the replica
	// redisURL is the REDIS_URL of the processes.
	redisURL string
	// sentinelAddr is the Sentinel's host:port, with sentinel.
	sentinelAddr string
	rdb          *redis.Client // the primary, through the Sentinel if any
	insp         *asynq.Inspector
	sim          *proc
	simURL       string
	workers      []*proc
	mcp          *proc
	mcpURL       string
	started      int // workers started, for names
}

// startCluster starts every process and waits until each listens.
func startCluster(t *testing.T, cfg clusterConfig) *cluster {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("the chaos suite needs redis-server on PATH (apt-get install redis-server): it stops and restarts it")
	}
	if cfg.workers == 0 {
		cfg.workers = 2
	}
	c := &cluster{cfg: cfg, dir: t.TempDir()}
	if keep := os.Getenv("MCPJOBS_CHAOS_LOGS"); keep != "" {
		// Keep the processes' logs after the test.
		c.dir = filepath.Join(keep, t.Name())
		if err := os.MkdirAll(c.dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c.redis = redistest.Start(t)
	c.redisURL = c.redis.URL
	if cfg.sentinel {
		c.startSentinel(t)
	} else {
		c.rdb = c.redis.Client(t)
	}
	c.insp = asynq.NewInspectorFromRedisClient(c.rdb)

	c.sim = startProc(t, c.dir, "sim", nil, append([]string{"sim", "--addr", "127.0.0.1:0",
		"--batch-duration", "3s", "--latency", "300ms", "--seed", "1"}, cfg.simArgs...)...)
	c.simURL = c.sim.waitURL(t)
	for range cfg.workers {
		c.startWorker(t)
	}
	c.mcp = startProc(t, c.dir, "mcp", append([]string{"REDIS_URL=" + c.redisURL, "MCP_AUTH_TOKENS=" + mcpIdentity + ":" + mcpToken}, cfg.mcpEnv...),
		"mcp", "--transport", "http", "--addr", "127.0.0.1:0")
	c.mcpURL = c.mcp.waitURL(t)
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range append([]*proc{c.sim, c.mcp}, c.workers...) {
				t.Logf("last log lines of %s:\n%s", p.name, p.tail(15))
			}
		}
	})
	return c
}

// startWorker starts one more worker process.
func (c *cluster) startWorker(t *testing.T) *proc {
	t.Helper()
	c.started++
	env := []string{"REDIS_URL=" + c.redisURL, "INTRANET_BASE_URL=" + c.simURL,
		"INTRANET_USERNAME=" + simulator.DefaultUsername, "INTRANET_PASSWORD=" + simulator.DefaultPassword}
	args := append([]string{"worker", "--concurrency", "6", "--call-timeout", "10s", "--shutdown-timeout", "5s",
		"--batch-poll-min", "300ms", "--batch-poll-max", "1s"}, c.cfg.workerArgs...)
	p := startProc(t, c.dir, fmt.Sprintf("worker-%d", c.started), env, args...)
	c.workers = append(c.workers, p)
	return p
}

// simPost posts a JSON body to a /sim route.
func (c *cluster) simPost(t *testing.T, route string, body any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(c.simURL+route, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s: %v", route, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s %s: HTTP %d %s", route, b, resp.StatusCode, msg)
	}
}

// faults changes the simulator's faults and latencies at runtime (POST
// /sim/faults: the fields given change, the others stay).
func (c *cluster) faults(t *testing.T, f map[string]any) {
	t.Helper()
	c.simPost(t, "/sim/faults", f)
	t.Logf("%s sim faults %v", time.Now().Format("15:04:05.000"), f)
}

// stats reads the simulator's counters.
func (c *cluster) stats(t *testing.T) simulator.Stats {
	t.Helper()
	resp, err := http.Get(c.simURL + "/sim/stats")
	if err != nil {
		t.Fatalf("GET /sim/stats: %v", err)
	}
	defer resp.Body.Close()
	var st simulator.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("GET /sim/stats: %v", err)
	}
	return st
}

// client connects a new MCP client over HTTP as the chaos identity.
func (c *cluster) client(t *testing.T) *mcpclient.Client {
	t.Helper()
	cl, err := mcpclient.NewStreamableHttpClient(c.mcpURL, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + mcpToken}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := cl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Initialize(ctx, mcpgo.InitializeRequest{Params: mcpgo.InitializeParams{
		ProtocolVersion: mcpgo.LATEST_PROTOCOL_VERSION,
		ClientInfo:      mcpgo.Implementation{Name: "chaos", Version: "1"},
	}}); err != nil {
		t.Fatal(err)
	}
	return cl
}

// orphaned counts the active tasks no live worker holds a lease on.
func (c *cluster) orphaned(t *testing.T) int {
	t.Helper()
	queues, err := c.insp.Queues()
	if err != nil {
		t.Fatalf("list queues: %v", err)
	}
	n := 0
	for _, q := range queues {
		tasks, err := c.insp.ListActiveTasks(q, asynq.PageSize(1000))
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Fatalf("active tasks of %s: %v", q, err)
		}
		for _, task := range tasks {
			if task.IsOrphaned {
				n++
			}
		}
	}
	return n
}

// endedJobs answers every job that ended, completed or failed (archived),
// in any queue: its ID and asynq state.
func (c *cluster) endedJobs(t *testing.T) map[string]string {
	t.Helper()
	return c.jobs(t, c.insp.ListCompletedTasks, c.insp.ListArchivedTasks)
}

// unendedJobs answers every job that has not ended, in any queue: its ID
// and asynq state.
func (c *cluster) unendedJobs(t *testing.T) map[string]string {
	t.Helper()
	return c.jobs(t, c.insp.ListPendingTasks, c.insp.ListActiveTasks, c.insp.ListScheduledTasks, c.insp.ListRetryTasks)
}

// jobs answers the jobs of every queue that the listers list.
func (c *cluster) jobs(t *testing.T, listers ...func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)) map[string]string {
	t.Helper()
	queues, err := c.insp.Queues()
	if err != nil {
		t.Fatalf("list queues: %v", err)
	}
	out := map[string]string{}
	for _, q := range queues {
		for _, list := range listers {
			for page := 1; ; page++ {
				tasks, err := list(q, asynq.PageSize(500), asynq.Page(page))
				if err != nil {
					t.Fatalf("list tasks of %s: %v", q, err)
				}
				for _, task := range tasks {
					out[task.ID] = task.State.String()
				}
				if len(tasks) < 500 {
					break
				}
			}
		}
	}
	return out
}
