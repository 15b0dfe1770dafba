package main

import (
	"context"
	"log/slog"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
)

func runSim(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("[flags]", "LOG_LEVEL", "LOG_FORMAT")
	addr := fs.String("addr", "127.0.0.1:8081", "address to listen on")
	var cfg simulator.Config
	simulator.RegisterFlags(fs, &cfg)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Logger = a.log.With(slog.String("component", "sim"))
	sim, err := simulator.New(cfg)
	if err != nil {
		return err
	}
	l, err := listen(*addr, "--addr")
	if err != nil {
		return err
	}
	a.log.Info("simulator listening", slog.String("url", "http://"+l.Addr().String()),
		slog.String("stats", "http://"+l.Addr().String()+"/sim/stats"))
	return serveHTTP(ctx, l, sim, a.log)
}
