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
		return startProcess(t, path)
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

func startProcess(t testing.TB, path string) *Server {
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := []string{path,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", dir, "--appendonly", "yes", "--save", "",
			"--protected-mode", "no", "--loglevel", "warning",
			"--logfile", filepath.Join(dir, "redis.log"),
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			t.Fatalf("redistest: start redis-server: %v", err)
		}
		s := &Server{URL: "redis://" + addr, Addr: addr, cmd: cmd, dir: dir, args: args}
		if ready(addr, 5*time.Second) {
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
