package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// localRedis is the Redis that dev and bench use.
type localRedis struct {
	url  string
	desc string
	stop func()
}

// startLocalRedis returns REDIS_URL when it is set; else starts redis-server
// from PATH on a free loopback port with append-only data under stateDir;
// else an embedded in-memory Redis whose data does not survive exit.
func startLocalRedis(ctx context.Context, a *app, stateDir string) (*localRedis, error) {
	if a.cfg.RedisURL != "" {
		return &localRedis{url: a.cfg.RedisURL, desc: redactURL(a.cfg.RedisURL) + " (REDIS_URL)", stop: func() {}}, nil
	}
	if path, err := exec.LookPath("redis-server"); err == nil {
		return startRedisServer(ctx, a, path, stateDir)
	}
	a.log.Warn("no REDIS_URL and no redis-server on PATH: using an embedded in-memory Redis; jobs do not survive exit (install redis-server or set REDIS_URL)")
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	return &localRedis{url: "redis://" + mr.Addr(), desc: "embedded in-memory at " + mr.Addr() + " (jobs do not survive exit)", stop: mr.Close}, nil
}

// startRedisServer runs redis-server on a free loopback port with
// append-only data in stateDir/redis.
func startRedisServer(ctx context.Context, a *app, path, stateDir string) (*localRedis, error) {
	dir, err := filepath.Abs(filepath.Join(stateDir, "redis"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state folder: %w (choose another with --state-dir)", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--appendonly", "yes", "--save", "", "--protected-mode", "yes",
		"--logfile", filepath.Join(dir, "redis.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches us, not it
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		rdb, err := openRedis(ctx, url, "")
		if err == nil {
			_ = rdb.Close()
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, fmt.Errorf("redis-server did not start (see %s): %w", filepath.Join(dir, "redis.log"), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.log.Info("started redis-server", slog.String("url", url), slog.String("dir", dir))
	return &localRedis{url: url, desc: url + " (local redis-server, data in " + dir + ")", stop: stop}, nil
}
