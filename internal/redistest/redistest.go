// Package redistest gives tests a real, isolated Redis.
//
// Each call to [Start] returns the URL of a Redis that no other test uses:
//
//   - a fresh redis-server process on a free loopback port, when redis-server
//     is on PATH (the normal case, and what CI uses);
//   - else a numbered database of the server named by MCPJOBS_TEST_REDIS_URL,
//     flushed before use;
//   - else an embedded in-memory Redis (miniredis), unless
//     MCPJOBS_TEST_REQUIRE_REDIS is set, in which case the test fails.
package redistest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Server is one Redis started for a test.
type Server struct {
	// URL is the redis:// URL to connect to.
	URL string
	// Addr is host:port.
	Addr string

	cmd  *exec.Cmd
	dir  string
	args []string
}

var nextDB atomic.Int32

// Start returns a Redis that only this test uses; it is stopped by t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	if path, err := exec.LookPath("redis-server"); err == nil {
		return startProcess(t, path, false)
	}
	if base := os.Getenv("MCPJOBS_TEST_REDIS_URL"); base != "" {
		return useShared(t, base)
	}
	if os.Getenv("MCPJOBS_TEST_REQUIRE_REDIS") != "" {
		t.Fatal("redistest: MCPJOBS_TEST_REQUIRE_REDIS is set but redis-server is not on PATH " +
			"(install it: apt-get install redis-server) and MCPJOBS_TEST_REDIS_URL is empty")
	}
	t.Log("redistest: no redis-server on PATH; using embedded miniredis")
	mr := miniredis.RunT(t)
	return &Server{URL: "redis://" + mr.Addr(), Addr: mr.Addr()}
}

// Client returns a go-redis client for the server, closed by t.Cleanup.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(s.URL)
	if err != nil {
		t.Fatalf("redistest: parse %s: %v", s.URL, err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop shuts the server down (saving its append-only file), as a crash test
// would; Restart brings it back on the same port with the same data.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.cmd == nil {
		t.Skip("redistest: Stop needs a redis-server process")
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	_ = c.ShutdownSave(context.Background()).Err()
	_ = c.Close()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again after Stop, on the same port and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		t.Fatalf("redistest: restart redis-server: %v", err)
	}
	s.cmd = cmd
	waitReady(t, s.Addr)
}

// Kill ends the server with SIGKILL, as a crash would: writes not yet
// in its append-only file are lost. Restart brings it back.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if s.cmd == nil {
		t.Skip("redistest: Kill needs a redis-server process")
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// PID is the redis-server process's ID, or 0 when it is not running.
func (s *Server) PID() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Dir is the server's working folder (its data and redis.log).
func (s *Server) Dir() string { return s.dir }

// StartReplica starts a redis-server that replicates primary (replicaof)
// and waits until its link to the primary is up. It needs redis-server on
// PATH (the test is skipped otherwise).
func StartReplica(t testing.TB, primary *Server) *Server {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil || primary.cmd == nil {
		t.Skip("redistest: a replica needs redis-server on PATH")
	}
	host, port, _ := net.SplitHostPort(primary.Addr)
	s := startProcess(t, path, false, "--replicaof", host, port)
	c := s.Client(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := c.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: replica %s did not link to %s within 10s:\n%s", s.Addr, primary.Addr, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TLSFiles are the PEM files of a TLS-only redis-server.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// StartTLS starts a redis-server that speaks only TLS (--port 0
// --tls-port P) with the given certificate and key, not asking clients
// for one (--tls-auth-clients no); its URL is rediss://127.0.0.1:P. It
// needs redis-server built with TLS on PATH (the test is skipped
// otherwise).
func StartTLS(t testing.TB, f TLSFiles) *Server {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redistest: TLS needs redis-server on PATH")
	}
	return startProcess(t, path, true, "--tls-cert-file", f.CertFile, "--tls-key-file", f.KeyFile,
		"--tls-ca-cert-file", f.CAFile, "--tls-auth-clients", "no")
}

// startProcess starts redis-server with extra arguments; with useTLS it
// listens on a TLS port only.
func startProcess(t testing.TB, path string, useTLS bool, extra ...string) *Server {
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		portArgs := []string{"--port", strconv.Itoa(port)}
		if useTLS {
			portArgs = []string{"--port", "0", "--tls-port", strconv.Itoa(port)}
		}
		args := append(append([]string{path}, portArgs...),
			"--bind", "127.0.0.1",
			"--dir", dir, "--appendonly", "yes", "--save", "",
			"--protected-mode", "no", "--loglevel", "warning",
			"--logfile", filepath.Join(dir, "redis.log"),
		)
		args = append(args, extra...)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			t.Fatalf("redistest: start redis-server: %v", err)
		}
		s := &Server{URL: "redis://" + addr, Addr: addr, cmd: cmd, dir: dir, args: args}
		isReady := func() bool { return ready(addr, 5*time.Second) }
		if useTLS {
			s.URL = "rediss://" + addr
			isReady = func() bool { return listening(addr, 5*time.Second) }
		}
		if isReady() {
			t.Cleanup(func() {
				if s.cmd != nil {
					_ = s.cmd.Process.Kill()
					_ = s.cmd.Wait()
				}
			})
			return s
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redistest: redis-server did not answer on %s:\n%s", addr, log)
		}
	}
}

func useShared(t testing.TB, base string) *Server {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("redistest: MCPJOBS_TEST_REDIS_URL: %v", err)
	}
	db := 1 + int(nextDB.Add(1)-1)%15
	u.Path = "/" + strconv.Itoa(db)
	opt, err := redis.ParseURL(u.String())
	if err != nil {
		t.Fatalf("redistest: MCPJOBS_TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("redistest: flush db %d: %v", db, err)
	}
	return &Server{URL: u.String(), Addr: u.Host}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitReady(t testing.TB, addr string) {
	if !ready(addr, 10*time.Second) {
		t.Fatalf("redistest: redis-server did not answer on %s", addr)
	}
}

// listening reports whether something accepts TCP connections on addr
// within the time given.
func listening(addr string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = conn.Close()
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func ready(addr string, within time.Duration) bool {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// String describes the server for logs.
func (s *Server) String() string { return fmt.Sprintf("redis at %s", s.Addr) }

// Sentinel is a redis-sentinel started for a test.
type Sentinel struct {
	// Addr is the Sentinel's host:port.
	Addr string
	// Master is the name it monitors the primary under.
	Master string
	// URL is REDIS_URL through it: redis-sentinel://Addr?master=Master.
	URL string
}

// StartSentinel starts one redis-sentinel on loopback that monitors
// primary as master (quorum 1, down after 1 s, failover timeout 5 s) and
// waits until it answers; it is stopped by t.Cleanup. It needs
// redis-sentinel on PATH (the test is skipped otherwise).
func StartSentinel(t testing.TB, primary *Server, master string) *Sentinel {
	t.Helper()
	path, err := exec.LookPath("redis-sentinel")
	if err != nil || primary.cmd == nil {
		t.Skip("redistest: a Sentinel needs redis-sentinel and redis-server on PATH")
	}
	dir := t.TempDir()
	port := freePort(t)
	host, pport, _ := net.SplitHostPort(primary.Addr)
	conf := filepath.Join(dir, "sentinel.conf") // the Sentinel rewrites it
	lines := []string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"dir " + dir,
		"logfile " + filepath.Join(dir, "sentinel.log"),
		fmt.Sprintf("sentinel monitor %s %s %s 1", master, host, pport),
		"sentinel down-after-milliseconds " + master + " 1000",
		"sentinel failover-timeout " + master + " 5000",
		"sentinel parallel-syncs " + master + " 1",
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, conf)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatalf("redistest: start redis-sentinel: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if !ready(addr, 10*time.Second) {
		log, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
		t.Fatalf("redistest: redis-sentinel did not answer on %s:\n%s", addr, log)
	}
	return &Sentinel{Addr: addr, Master: master, URL: "redis-sentinel://" + addr + "?master=" + master}
}

// RoundTrips is a go-redis hook that counts the round trips a client makes:
// each command sent alone and each pipeline counts one.
type RoundTrips struct{ n atomic.Int64 }

// Count returns the round trips counted since the last Reset.
func (h *RoundTrips) Count() int64 { return h.n.Load() }

// Reset starts the count again.
func (h *RoundTrips) Reset() { h.n.Store(0) }

// DialHook implements redis.Hook.
func (h *RoundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (h *RoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}

// ProcessPipelineHook implements redis.Hook.
func (h *RoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}
