package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
)

// Wait limits for tools that wait for their job.
const (
	// DefaultWaitSeconds is how long a tool waits for its job by default.
	DefaultWaitSeconds = 25
	// MaxWaitSeconds caps wait_seconds.
	MaxWaitSeconds = 60
	// MaxAuthTokenLength caps a caller's auth_token.
	MaxAuthTokenLength = 4096
)

type tool struct {
	tool    mcpgo.Tool
	handler mcpserver.ToolHandlerFunc
}

func (s *Server) tools() []tool {
	return []tool{
		{s.aspectTool(), s.handleAspect},
		{queryTool(), s.handleQuery},
		{dagTool(), s.handleDAG},
		{submitTool(), s.handleSubmit},
		{statusTool(), s.handleStatus},
		{getJobTool(), s.handleGetJob},
		{listJobsTool(), s.handleListJobs},
		{cancelJobTool(), s.handleCancelJob},
	}
}

const (
	waitDescription      = "How long to wait for the job to end before answering with its current state, 0–60 seconds (default 25). The job goes on after the answer; fetch it later with get_job."
	authTokenDescription = "Optional: your own platform token, used instead of the shared service token. It is never refreshed; if the platform refuses it (expired or never valid) the job fails with \"the platform refused the auth_token you gave\". It is kept out of logs, results and the dashboard."
)

// Schema edits: what a struct tag cannot say.

func rangeOf(p *jsonschema.Schema, lo, hi float64, def any) {
	p.Minimum, p.Maximum = &lo, &hi
	if def != nil {
		p.Default, _ = json.Marshal(def)
	}
}

func lengthOf(p *jsonschema.Schema, lo, hi int) { p.MinLength, p.MaxLength = &lo, &hi }

func enumOf(p *jsonschema.Schema, values ...string) {
	p.Enum = make([]any, len(values))
	for i, v := range values {
		p.Enum[i] = v
	}
}

// platformArgs describes the arguments every platform tool shares
// (auth_token, wait_seconds).
func platformArgs(props map[string]*jsonschema.Schema) {
	props["auth_token"].Description = authTokenDescription
	props["auth_token"].MaxLength = ptr(MaxAuthTokenLength)
	props["wait_seconds"].Description = waitDescription
	rangeOf(props["wait_seconds"], 0, MaxWaitSeconds, DefaultWaitSeconds)
}

func ptr[T any](v T) *T { return &v }

// withSchemas sets a tool's input and output schemas, derived from Go types.
func withSchemas(in, out *argSchema) mcpgo.ToolOption {
	return func(t *mcpgo.Tool) {
		t.InputSchema = mcpgo.ToolInputSchema{} // NewTool's default; the raw schema replaces it
		t.RawInputSchema = in.raw
		t.RawOutputSchema = out.raw
	}
}

// Tool annotations, all four said explicitly (mcp-go's defaults are
// destructive and open-world): only tools that call the platform are
// open-world.
func annotations(readOnly, destructive, idempotent, openWorld bool) mcpgo.ToolOption {
	return func(t *mcpgo.Tool) {
		t.Annotations.ReadOnlyHint = &readOnly
		t.Annotations.DestructiveHint = &destructive
		t.Annotations.IdempotentHint = &idempotent
		t.Annotations.OpenWorldHint = &openWorld
	}
}

// aspectArgs are coverage_aspect_analysis's arguments.
type aspectArgs struct {
	CoverageID  string    `json:"coverage_id" jsonschema:"Elevation coverage to analyse, e.g. dem_30m."`
	BBox        []float64 `json:"bbox" jsonschema:"Bounding box [min_lon, min_lat, max_lon, max_lat] in degrees (WGS84), min < max, e.g. [116.0, 39.8, 116.1, 39.9]."`
	ScaleM      *float64  `json:"scale_m,omitempty" jsonschema:"Cell size in metres (default 30). The region may hold at most 4,000,000 cells at this scale."`
	AuthToken   string    `json:"auth_token,omitempty"`
	WaitSeconds *float64  `json:"wait_seconds,omitempty"`
}

func (s *Server) aspectArgs() *argSchema {
	return mustSchema[aspectArgs](func(props map[string]*jsonschema.Schema) {
		lengthOf(props["coverage_id"], 1, 128)
		if !s.anyCoverage() {
			enumOf(props["coverage_id"], s.opts.Coverages...)
		}
		props["bbox"].MinItems, props["bbox"].MaxItems = ptr(4), ptr(4)
		rangeOf(props["scale_m"], jobs.MinScaleM, jobs.MaxScaleM, jobs.DefaultScaleM)
		platformArgs(props)
	})
}

func (s *Server) aspectTool() mcpgo.Tool {
	return mcpgo.NewTool("coverage_aspect_analysis",
		mcpgo.WithToolTitle("Slope aspect analysis"),
		mcpgo.WithDescription("Compute the slope aspect (the compass direction slopes face) of an elevation coverage over a bounding box, as a histogram over N, NE, E, SE, S, SW, W, NW and flat, with the mean aspect in degrees. Runs as a durable job on the intranet platform; answers the job view with the result when it ends within wait_seconds."),
		withSchemas(s.schemas.aspect, viewSchema),
		annotations(true, false, false, true),
	)
}

func (s *Server) handleAspect(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a aspectArgs
	if err := s.schemas.aspect.bind(req, &a); err != nil {
		return toolError(err), nil
	}
	wait, err := waitDuration(a.WaitSeconds, DefaultWaitSeconds)
	if err != nil {
		return toolError(err), nil
	}
	p := jobs.AspectPayload{CoverageID: a.CoverageID, BBox: a.BBox}
	if a.ScaleM != nil {
		if *a.ScaleM == 0 {
			return toolError(&jobs.FieldError{Field: "scale_m", Problem: "must be between 1 and 10000 metres, got 0"}), nil
		}
		p.ScaleM = *a.ScaleM
	}
	if err := p.Validate(); err != nil {
		return toolError(err), nil
	}
	if err := checkAuthToken(a.AuthToken); err != nil {
		return toolError(err), nil
	}
	if !s.anyCoverage() && !slices.Contains(s.opts.Coverages, p.CoverageID) {
		return toolError(&jobs.FieldError{Field: "coverage_id", Problem: fmt.Sprintf("unknown coverage %q; known: %s", p.CoverageID, strings.Join(s.opts.Coverages, ", "))}), nil
	}
	return s.enqueueAndWait(ctx, req, p.WithDefaults(), a.AuthToken, wait)
}

// enqueueAndWait enqueues a job for the caller and answers its view after
// waiting up to wait for it to end.
func (s *Server) enqueueAndWait(ctx context.Context, req mcpgo.CallToolRequest, p jobs.Payload, authToken string, wait time.Duration, opts ...store.EnqueueOption) (*mcpgo.CallToolResult, error) {
	owner := IdentityFrom(ctx)
	if owner == "" {
		return toolError(errors.New("no caller identity")), nil
	}
	if authToken != "" {
		opts = append(opts, store.WithCredential(authToken))
	}
	v, err := s.opts.Jobs.Enqueue(ctx, owner, p, opts...)
	if err != nil {
		return toolError(err), nil
	}
	s.log.InfoContext(ctx, "job enqueued", slog.String("tool", req.Params.Name), slog.String("job_id", v.JobID), slog.String("owner", owner))
	if AsTask(ctx) {
		TaskCreated(ctx, v)
		return viewResult(v), nil
	}
	if wait > 0 {
		waited, err := s.opts.Jobs.Wait(ctx, owner, v.JobID, wait, progressReporter(ctx, req, wait))
		if err != nil {
			// The job is queued: name it, so that a retry does not make
			// a second one.
			return toolError(fmt.Errorf("job %s is queued, but waiting for it failed: %w; fetch it with get_job(%q) instead of calling again", v.JobID, err, v.JobID)), nil
		}
		v = waited
	}
	return viewResult(v), nil
}

// progressReporter returns a callback that sends progress notifications
// while a job is waited for, when the client asked for them.
func progressReporter(ctx context.Context, req mcpgo.CallToolRequest, wait time.Duration) func(*jobs.View) {
	if req.Params.Meta == nil || req.Params.Meta.ProgressToken == nil {
		return nil
	}
	srv := mcpserver.ServerFromContext(ctx)
	if srv == nil {
		return nil
	}
	token := req.Params.Meta.ProgressToken
	start := time.Now()
	total := wait.Seconds()
	return func(v *jobs.View) {
		elapsed := math.Min(time.Since(start).Seconds(), total)
		msg := fmt.Sprintf("job %s is %s (attempt %d)", v.JobID, v.State, v.Attempts)
		_ = srv.SendNotificationToClient(ctx, "notifications/progress", map[string]any{
			"progressToken": token,
			"progress":      math.Round(elapsed*10) / 10,
			"total":         total,
			"message":       msg,
		})
	}
}

// viewResult answers a job view as structured content plus the same JSON as
// text.
func viewResult(v *jobs.View) *mcpgo.CallToolResult {
	b, err := json.Marshal(v)
	if err != nil {
		return toolError(fmt.Errorf("encode job view: %w", err))
	}
	return mcpgo.NewToolResultStructured(json.RawMessage(b), string(b))
}

// toolError answers a failure as a tool error that says what to do.
func toolError(err error) *mcpgo.CallToolResult {
	return mcpgo.NewToolResultError(err.Error())
}

// waitDuration checks wait_seconds (0–60) and applies its default.
func waitDuration(v *float64, def float64) (time.Duration, error) {
	w := def
	if v != nil {
		w = *v
	}
	if math.IsNaN(w) || w < 0 || w > MaxWaitSeconds {
		return 0, &jobs.FieldError{Field: "wait_seconds", Problem: fmt.Sprintf("must be between 0 and %d, got %v", MaxWaitSeconds, w)}
	}
	return time.Duration(w * float64(time.Second)), nil
}
