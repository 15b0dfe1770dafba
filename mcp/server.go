package mcp

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpjobs/mcpjobs/jobs/store"
)

// DefaultCoverages are the coverage IDs offered when none are configured.
var DefaultCoverages = []string{"dem_30m", "dem_90m", "srtm_30m"}

// MaxRequestBytes caps an HTTP request body.
const MaxRequestBytes = 2 << 20

// LargeRequestBytes and MaxLargeRequests bound the memory that request
// bodies take: at most MaxLargeRequests bodies larger than LargeRequestBytes
// (or of unknown length) are read at once; one more is answered 503 with
// Retry-After. Small requests (nearly every MCP call) are not limited.
const (
	LargeRequestBytes = 64 << 10
	MaxLargeRequests  = 8
)

// Options configure a Server.
type Options struct {
	// Jobs enqueues and reads jobs. Required.
	Jobs *store.Client
	// Coverages are the coverage IDs coverage_aspect_analysis accepts.
	// Default: DefaultCoverages. A single "*" accepts any well-formed ID.
	Coverages []string
	// Tokens maps HTTP bearer tokens to identities. Default: none, every
	// HTTP caller is LocalIdentity.
	Tokens *Tokens
	// OAuth, when set, lets HTTP callers sign in with the identity provider
	// (beside Tokens); their identity is OIDCIdentityPrefix + the identity
	// claim. Default: none.
	OAuth *OAuth
	// Version is reported to clients. Default: "dev".
	Version string
	// Metrics, when set, registers the tool call series (mcpjobs_tool_…).
	// Default: none.
	Metrics prometheus.Registerer
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
}

// Server is the MCP server.
type Server struct {
	opts  Options
	log   *slog.Logger
	mcp   *mcpserver.MCPServer
	tasks TaskHandler
	// schemas holds the input schemas that depend on Options, built once
	// in New.
	schemas struct{ aspect *argSchema }
}

var errMissingJobs = errors.New("mcp: Options.Jobs is nil (create one with store.NewClient on a Redis connection)")

// New returns a Server with every tool registered.
func New(opts Options) (*Server, error) {
	if opts.Jobs == nil {
		return nil, errMissingJobs
	}
	if err := checkOAuth(opts.OAuth); err != nil {
		return nil, err
	}
	if len(opts.Coverages) == 0 {
		opts.Coverages = DefaultCoverages
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: opts.Logger}
	s.schemas.aspect = s.aspectArgs()
	s.mcp = mcpserver.NewMCPServer("mcpjobs", opts.Version,
		mcpserver.WithToolCapabilities(false),
		mcpserver.WithStrictInputSchemaDefault(),
		mcpserver.WithRecovery(),
		mcpserver.WithToolHandlerMiddleware(newToolMetrics(opts.Metrics).middleware),
		mcpserver.WithInstructions(instructions),
	)
	support := map[string]mcpgo.TaskSupport{}
	for _, t := range s.tools() {
		s.mcp.AddTool(t.tool, t.handler)
		support[t.tool.Name] = mcpgo.TaskSupportOptional
	}
	for _, name := range []string{"get_job", "list_jobs", "cancel_job"} {
		support[name] = mcpgo.TaskSupportForbidden
	}
	tasks, err := NewTaskHandler(s.mcp, TaskConfig{Jobs: opts.Jobs, Support: support, Logger: opts.Logger},
		mcpserver.WithStreamableHTTPLogger(s.log))
	if err != nil {
		return nil, err
	}
	s.tasks = tasks
	return s, nil
}

const instructions = `mcpjobs runs long calls to the intranet geospatial platform as durable jobs.
Each tool enqueues a job and waits up to wait_seconds (default 25) for it; the answer is the job view:
job_id, state (pending, scheduled, active, retry, completed, failed, cancelled), and result or error.
A job that has not ended yet keeps running: ask again later with get_job and its job_id.
Clients that negotiated MCP tasks get the platform tools' calls as tasks (the task ID is the job_id).`

// anyCoverage reports whether every well-formed coverage ID is accepted.
func (s *Server) anyCoverage() bool { return slices.Contains(s.opts.Coverages, "*") }

// Close stops what the HTTP handler keeps running (a Redis subscription
// that keeps the replica's view of HTTP sessions current).
func (s *Server) Close() error { return s.tasks.Close() }

// HTTPHandler serves streamable HTTP MCP at /mcp, behind bearer-token
// authentication when tokens or OAuth are configured, and with OAuth the
// Protected Resource Metadata at /.well-known/oauth-protected-resource/mcp. Long jobs can run as MCP tasks
// (NewTaskHandler): the platform tools support them, the job tools do not.
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/mcp", s.authenticate(limitBody(make(chan struct{}, MaxLargeRequests), s.tasks)))
	if s.opts.OAuth != nil {
		s.opts.OAuth.handleMetadata(mux)
	}
	return mux
}

// limitBody caps a request body at MaxRequestBytes, and lets at most
// cap(large) large bodies in at once.
func limitBody(large chan struct{}, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxRequestBytes {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if r.Body != nil && r.Body != http.NoBody && (r.ContentLength < 0 || r.ContentLength > LargeRequestBytes) {
			select {
			case large <- struct{}{}:
				defer func() { <-large }()
			default:
				w.Header().Set("Retry-After", "1")
				http.Error(w, "too many large requests at once; retry in a second", http.StatusServiceUnavailable)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		next.ServeHTTP(w, r)
	})
}

// MCPServer returns the underlying mcp-go server, for in-process clients.
func (s *Server) MCPServer() *mcpserver.MCPServer { return s.mcp }

// HasTokens reports whether HTTP callers must authenticate.
func (s *Server) HasTokens() bool { return s.opts.Tokens.Len() > 0 }
