package main

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// devStateDir is the state folder `mcpjobs dev` uses by default; devRedisFile
// inside it names the Redis that a running dev uses, so that other
// subcommands started beside it (token status, worker, web) find it.
const (
	devStateDir  = ".mcpjobs"
	devRedisFile = "redis-url"
)

// recordDevRedis writes dev's Redis URL into its state folder (only the
// owner can read it: the URL may hold a password) and returns a func that
// removes it.
func recordDevRedis(stateDir, url string, log *slog.Logger) func() {
	path := filepath.Join(stateDir, devRedisFile)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		log.Warn("cannot record the Redis URL for other subcommands", slog.Any("error", err))
		return func() {}
	}
	if err := os.WriteFile(path, []byte(url+"\n"), 0o600); err != nil {
		log.Warn("cannot record the Redis URL for other subcommands", slog.Any("error", err))
		return func() {}
	}
	return func() { _ = os.Remove(path) }
}

// redisURL is the Redis a subcommand uses: the flag or REDIS_URL when set;
// else, when a `mcpjobs dev` runs from this folder, its Redis (saying so);
// else the default.
func (a *app) redisURL(flagValue string) string {
	if a.cfg.RedisURL != "" || flagValue != defaultRedisURL {
		return flagValue
	}
	path := filepath.Join(devStateDir, devRedisFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("cannot read the Redis URL of mcpjobs dev", slog.String("file", path), slog.Any("error", err))
		}
		return flagValue
	}
	url := strings.TrimSpace(string(b))
	if url == "" {
		return flagValue
	}
	a.log.Info("REDIS_URL is not set: using the Redis of the mcpjobs dev running here", slog.String("file", path), slog.String("redis", redactURL(url)))
	return url
}
