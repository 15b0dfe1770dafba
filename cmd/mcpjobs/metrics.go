package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// newRegistry returns a Prometheus registry with the Go and process series.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// metricsHandler serves a registry for Prometheus.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// serveMetrics serves /metrics on addr until ctx ends; an empty addr serves
// nothing. With ready set, it also serves /healthz (200 while the process
// serves HTTP) and /readyz (200 while ready answers nil, else 503 with its
// error).
func serveMetrics(ctx context.Context, a *app, addr string, reg *prometheus.Registry, ready func() error) (func() error, error) {
	if addr == "" {
		return func() error { <-ctx.Done(); return nil }, nil
	}
	l, err := listen(addr, "--metrics-addr")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metricsHandler(reg))
	if ready != nil {
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
			if err := ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok\n")
		})
	}
	a.log.Info("serving metrics", slog.String("url", "http://"+l.Addr().String()+"/metrics"))
	return func() error { return serveHTTP(ctx, l, mux, a.log) }, nil
}

// redisReady is a readiness check: Redis answers a PING within a second.
func redisReady(rdb redis.UniversalClient) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis does not answer: %w", err)
		}
		return nil
	}
}
