package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// runHealth probes an HTTP health endpoint, for container health checks:
// the image is distroless, with no curl or wget to probe with.
func runHealth(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("[flags] URL   (exit 0 when URL answers 2xx, 1 otherwise)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(a.stderr, "usage: mcpjobs health [--timeout 3s] URL, e.g. http://127.0.0.1:9090/readyz")
		return errUsage
	}
	target := fs.Arg(0)
	if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(a.stderr, "health: %q is not an http(s) URL\n", target)
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("unhealthy: %s answered %s: %s", target, resp.Status, msg)
	}
	fmt.Fprintf(a.stdout, "healthy: %s answered %s\n", target, resp.Status)
	return nil
}
