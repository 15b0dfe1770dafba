package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/mcpjobs/mcpjobs/worker/simulator"
)

var devEnv = []string{"REDIS_URL", "INTRANET_BASE_URL", "INTRANET_AUTH_URL", "INTRANET_USERNAME", "INTRANET_PASSWORD", "INTRANET_TOKEN_PREFIX", "INTRANET_COVERAGES", "MCP_AUTH_TOKENS", "LOG_LEVEL", "LOG_FORMAT"}

func runDev(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("[flags]", devEnv...)
	addr := fs.String("addr", "127.0.0.1:8080", "address of MCP (/mcp)")
	simAddr := fs.String("sim-addr", "127.0.0.1:8081", "address of the simulator (unless INTRANET_BASE_URL is set)")
	stateDir := fs.String("state-dir", ".mcpjobs", "folder for the local redis-server's append-only data")
	var wf workerFlags
	wf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if !isLoopback(*addr) && a.cfg.MCPAuthTokens == "" {
		return fmt.Errorf("dev serves MCP without authentication; bind a loopback --addr (e.g. 127.0.0.1:8080) or set MCP_AUTH_TOKENS")
	}

	rdb, redisDesc, stopRedis, err := devRedis(ctx, a, *stateDir)
	if err != nil {
		return err
	}
	defer stopRedis()
	defer rdb.Close()

	g, gctx := errgroup.WithContext(ctx)

	simURL := "(external) " + a.cfg.Intranet.BaseURL
	if a.cfg.Intranet.BaseURL == "" {
		sim, err := simulator.New(simulator.Config{Logger: a.log.With(slog.String("component", "sim"))})
		if err != nil {
			return err
		}
		l, err := listen(*simAddr, "--sim-addr")
		if err != nil {
			return err
		}
		simURL = "http://" + l.Addr().String()
		a.cfg.Intranet.BaseURL = simURL
		a.cfg.Intranet.AuthURL = ""
		a.cfg.Intranet.Username = orDefault(a.cfg.Intranet.Username, simulator.DefaultUsername)
		a.cfg.Intranet.Password = orDefault(a.cfg.Intranet.Password, simulator.DefaultPassword)
		g.Go(func() error { return serveHTTP(gctx, l, sim, a.log) })
	}

	w, err := newWorker(a, rdb, wf)
	if err != nil {
		return err
	}
	g.Go(func() error { return w.Run(gctx) })

	srv, jc, err := newMCPServer(a, rdb)
	if err != nil {
		return err
	}
	defer jc.Close()
	l, err := listen(*addr, "--addr")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", srv.HTTPHandler())
	g.Go(func() error { return serveHTTP(gctx, l, mux, a.log) })

	printDevBanner(a, "http://"+l.Addr().String(), simURL, redisDesc, srv.HasTokens())
	err = g.Wait()
	a.log.Info("dev stopped")
	return err
}

func printDevBanner(a *app, base, simURL, redisDesc string, tokens bool) {
	cfg := map[string]any{"mcpServers": map[string]any{"mcpjobs": map[string]any{"type": "http", "url": base + "/mcp"}}}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	fmt.Fprintf(a.stdout, `mcpjobs dev is running. Ctrl-C stops everything it started.

  MCP (streamable HTTP)  %s/mcp
  simulator              %s  (stats: %s/sim/stats)
  redis                  %s

MCP client configuration:
%s
`, base, simURL, simURL, redisDesc, b)
	if tokens {
		fmt.Fprintln(a.stdout, `(MCP_AUTH_TOKENS is set: add "headers": {"Authorization": "Bearer <token>"})`)
	}
	fmt.Fprintf(a.stdout, "\nTry it:\n  npx @modelcontextprotocol/inspector@1.0.3 --cli %s/mcp --transport http --method tools/call --tool-name coverage_aspect_analysis --tool-arg coverage_id=dem_30m --tool-arg 'bbox=[116.0,39.8,116.1,39.9]'\n", base)
}

// devRedis returns a Redis for dev: REDIS_URL; else a redis-server from
// PATH with append-only data under stateDir; else an embedded in-memory
// Redis whose jobs do not survive exit.
func devRedis(ctx context.Context, a *app, stateDir string) (redis.UniversalClient, string, func(), error) {
	if a.cfg.RedisURL != "" {
		rdb, err := openRedis(ctx, a.cfg.RedisURL)
		return rdb, redactURL(a.cfg.RedisURL) + " (REDIS_URL)", func() {}, err
	}
	if path, err := exec.LookPath("redis-server"); err == nil {
		return startRedisServer(ctx, a, path, stateDir)
	}
	a.log.Warn("no REDIS_URL and no redis-server on PATH: using an embedded in-memory Redis; jobs do not survive exit (install redis-server or set REDIS_URL)")
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return nil, "", nil, fmt.Errorf("embedded redis: %w", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	return rdb, "embedded in-memory at " + mr.Addr() + " (jobs do not survive exit)", mr.Close, nil
}

// startRedisServer runs redis-server on a free loopback port with
// append-only data in stateDir/redis.
func startRedisServer(ctx context.Context, a *app, path, stateDir string) (redis.UniversalClient, string, func(), error) {
	dir, err := filepath.Abs(filepath.Join(stateDir, "redis"))
	if err != nil {
		return nil, "", nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", nil, fmt.Errorf("state folder: %w (choose another with --state-dir)", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--appendonly", "yes", "--save", "", "--protected-mode", "yes",
		"--logfile", filepath.Join(dir, "redis.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches us, not it
	if err := cmd.Start(); err != nil {
		return nil, "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // redis-server saves and exits
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	}
	url := "redis://127.0.0.1:" + strconv.Itoa(port)
	var rdb redis.UniversalClient
	deadline := time.Now().Add(10 * time.Second)
	for {
		rdb, err = openRedis(ctx, url)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, "", nil, errors.Join(errors.New("redis-server did not start; see "+filepath.Join(dir, "redis.log")), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.log.Info("started redis-server", slog.String("url", url), slog.String("dir", dir))
	return rdb, url + " (local redis-server, data in " + dir + ")", stop, nil
}
