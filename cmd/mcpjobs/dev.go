package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
)

var devEnv = append([]string{"WEB_USERNAME", "WEB_PASSWORD", "REDIS_URL", "REDIS_CA_FILE", "REDIS_WAIT_REPLICAS", "INTRANET_BASE_URL", "INTRANET_AUTH_URL", "INTRANET_USERNAME", "INTRANET_PASSWORD", "INTRANET_TOKEN_PREFIX", "INTRANET_COVERAGES", "MCP_AUTH_TOKENS", "LOG_LEVEL", "LOG_FORMAT"}, oauthEnv...)

func runDev(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("[flags]", devEnv...)
	addr := fs.String("addr", "127.0.0.1:8080", "address of MCP (/mcp)")
	simAddr := fs.String("sim-addr", "127.0.0.1:8081", "address of the simulator (unless INTRANET_BASE_URL is set)")
	stateDir := fs.String("state-dir", devStateDir, "folder for the local redis-server's append-only data")
	webAddr := fs.String("web-addr", "127.0.0.1:8090", "address of the operator site: /monitoring (asynqmon), /metrics, /healthz, /readyz")
	fs.BoolVar(&a.statusServiceToken, "status-service-token", false, "let query_task_status ask the platform with the service token about batch tasks not submitted through mcpjobs, for every identity (default: off: callers pass their own auth_token)")
	var wf workerFlags
	wf.register(fs)
	fs.IntVar(&a.cfg.RedisWaitReplicas, "redis-wait-replicas", a.cfg.RedisWaitReplicas, "Redis replicas that must acknowledge a job before its job_id is handed out (REDIS_WAIT_REPLICAS; see docs/reliability.md)")
	var of oauthFlags
	of.register(fs, a.cfg)
	if err := parse(fs, args); err != nil {
		return err
	}
	a.retention = wf.retention
	if !isLoopback(*addr) && a.cfg.MCPAuthTokens == "" && *of.issuer == "" {
		return fmt.Errorf("dev serves MCP without authentication; bind a loopback --addr (e.g. 127.0.0.1:8080) or set MCP_AUTH_TOKENS or MCP_OAUTH_ISSUER")
	}
	oa, err := of.build(ctx, a, *addr)
	if err != nil {
		return err
	}

	lr, err := startLocalRedis(ctx, a, *stateDir)
	if err != nil {
		return err
	}
	defer lr.stop()
	rdb, err := openRedis(ctx, lr.url, a.cfg.RedisCAFile)
	if err != nil {
		return err
	}
	defer rdb.Close()
	defer recordDevRedis(*stateDir, lr.url, a.log)()

	g, gctx := errgroup.WithContext(ctx)
	webURL, err := startWeb(gctx, a, rdb, *webAddr, g)
	if err != nil {
		return err
	}

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
		if a.cfg.Intranet.PasswordFile == "" {
			a.cfg.Intranet.Password = orDefault(a.cfg.Intranet.Password, simulator.DefaultPassword)
		}
		g.Go(func() error { return serveHTTP(gctx, l, sim, a.log) })
	}

	reg := newRegistry()
	wf.metrics = reg
	w, err := newWorker(a, rdb, wf)
	if err != nil {
		return err
	}
	g.Go(func() error { return w.Run(gctx) })

	srv, jc, err := newMCPServer(a, rdb, reg, oa)
	if err != nil {
		return err
	}
	defer jc.Close()
	defer srv.Close()
	l, err := listen(*addr, "--addr")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mcpHandler := srv.HTTPHandler()
	mux.Handle("/mcp", mcpHandler)
	mux.Handle("/.well-known/", mcpHandler) // OAuth Protected Resource Metadata
	mux.Handle("/metrics", metricsHandler(reg))
	g.Go(func() error { return serveHTTP(gctx, l, mux, a.log) })

	tokenFile, removeToken := "", func() {}
	if srv.HasTokens() {
		tokenFile, removeToken = recordTryToken(*stateDir, a.cfg.MCPAuthTokens, a.log)
	}
	defer removeToken()
	printDevBanner(a, "http://"+l.Addr().String(), webURL, simURL, lr.desc, tokenFile)
	if oa != nil {
		fmt.Fprintf(a.stdout, "\n(MCP_OAUTH_ISSUER is set: clients sign in with %s; metadata at %s/.well-known/oauth-protected-resource/mcp)\n", oa.Verifier.Issuer(), "http://"+l.Addr().String())
	}
	err = g.Wait()
	a.log.Info("dev stopped")
	return err
}

func printDevBanner(a *app, base, webURL, simURL, redisDesc, tokenFile string) {
	cfg := map[string]any{"mcpServers": map[string]any{"mcpjobs": map[string]any{"type": "http", "url": base + "/mcp"}}}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	fmt.Fprintf(a.stdout, `mcpjobs dev is running. Ctrl-C stops everything it started.

  MCP (streamable HTTP)  %s/mcp
  metrics (Prometheus)   %s/metrics
  dashboard (asynqmon)   %s/monitoring/
  simulator              %s  (stats: %s/sim/stats)
  redis                  %s

MCP client configuration:
%s
`, base, base, webURL, simURL, simURL, redisDesc, b)
	header := ""
	if tokenFile != "" {
		fmt.Fprintln(a.stdout, `(MCP_AUTH_TOKENS is set: add "headers": {"Authorization": "Bearer <token>"})`)
		header = ` --header "Authorization: Bearer $(cat ` + tokenFile + `)"`
	}
	fmt.Fprintf(a.stdout, "\nTry it:\n  npx @modelcontextprotocol/inspector@1.0.3 --cli %s/mcp --transport http%s --method tools/call --tool-name coverage_aspect_analysis --tool-arg coverage_id=dem_30m --tool-arg 'bbox=[116.0,39.8,116.1,39.9]'\n", base, header)
}

// recordTryToken writes the first of MCP_AUTH_TOKENS into the state folder
// (only the owner can read it), so that the printed try-it command works
// without the token being printed; it returns the file ("" without tokens)
// and a func that removes it.
func recordTryToken(stateDir, tokens string, log *slog.Logger) (string, func()) {
	first, _, _ := strings.Cut(tokens, ",")
	_, tok, ok := strings.Cut(first, ":")
	if tok = strings.TrimSpace(tok); !ok || tok == "" {
		return "", func() {}
	}
	path := filepath.Join(stateDir, "try-token")
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		log.Warn("cannot write the token of the try-it command", slog.Any("error", err))
		return "", func() {}
	}
	if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
		log.Warn("cannot write the token of the try-it command", slog.Any("error", err))
		return "", func() {}
	}
	return path, func() { _ = os.Remove(path) }
}
