package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpjobs/mcpjobs/jobs"
)

// Tools other than the aspect analysis: big query, code to DAG, batch
// submit and status, and the job tools.

const (
	// DefaultMaxAgeSeconds is how old a recorded batch status may be for
	// query_task_status to answer it without asking the platform.
	DefaultMaxAgeSeconds = 10
	// MaxMaxAgeSeconds caps max_age_seconds.
	MaxMaxAgeSeconds = 86400
)

func queryTool() mcpgo.Tool {
	return mcpgo.NewTool("run_big_query",
		mcpgo.WithToolTitle("Big-data SQL query"),
		mcpgo.WithDescription("Run a SQL SELECT on the platform's big-data engine (tables such as landcover and elevation_stats) and return columns, rows, row_count, truncated and bytes_scanned. Runs as a durable job; answers the job view, with the result when it ends within wait_seconds. A query the platform cannot parse fails with its parser's message."),
		mcpgo.WithString("sql", mcpgo.Required(), mcpgo.Description("The SQL query, e.g. SELECT region, area_km2 FROM landcover WHERE class = 'forest' LIMIT 10. At most 256 KiB."),
			mcpgo.MinLength(1), mcpgo.MaxLength(jobs.MaxCodeBytes)),
		mcpgo.WithInteger("max_rows", mcpgo.Description("Most rows to return (default 1000, at most 100000); truncated says whether more matched."),
			mcpgo.Min(1), mcpgo.Max(jobs.MaxMaxRows), mcpgo.DefaultNumber(jobs.DefaultMaxRows)),
		authTokenOption(),
		waitSecondsOption(),
		mcpgo.WithRawOutputSchema(viewSchema),
		mcpgo.WithReadOnlyHintAnnotation(true),
		mcpgo.WithOpenWorldHintAnnotation(true),
	)
}

type queryArgs struct {
	SQL         string   `json:"sql"`
	MaxRows     *int     `json:"max_rows"`
	AuthToken   string   `json:"auth_token"`
	WaitSeconds *float64 `json:"wait_seconds"`
}

func (s *Server) handleQuery(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a queryArgs
	if err := bind(req, &a); err != nil {
		return toolError(err), nil
	}
	wait, err := waitDuration(a.WaitSeconds, DefaultWaitSeconds)
	if err != nil {
		return toolError(err), nil
	}
	p := jobs.QueryPayload{SQL: a.SQL}
	if a.MaxRows != nil {
		if *a.MaxRows < 1 {
			return toolError(&jobs.FieldError{Field: "max_rows", Problem: fmt.Sprintf("must be between 1 and %d, got %d", jobs.MaxMaxRows, *a.MaxRows)}), nil
		}
		p.MaxRows = *a.MaxRows
	}
	if err := checkAuthToken(a.AuthToken); err != nil {
		return toolError(err), nil
	}
	return s.enqueueAndWait(ctx, req, p.WithDefaults(), a.AuthToken, wait)
}

func dagTool() mcpgo.Tool {
	return mcpgo.NewTool("execute_code_to_dag",
		mcpgo.WithToolTitle("Compile code to a DAG"),
		mcpgo.WithDescription("Compile a geospatial script (JavaScript or Python, in the platform's Image/Export style) into the platform's dataflow graph: nodes (id, op, args), edges and node_count. Runs as a durable job; answers the job view. Code the platform cannot parse fails with the parser's line and column."),
		mcpgo.WithString("code", mcpgo.Required(), mcpgo.Description("The script, e.g. var dem = Image('dem_30m'); var a = dem.aspect(); Export(a, 'out'). At most 256 KiB."),
			mcpgo.MinLength(1), mcpgo.MaxLength(jobs.MaxCodeBytes)),
		mcpgo.WithString("language", mcpgo.Required(), mcpgo.Description("The script's language."), mcpgo.Enum(jobs.Languages...)),
		authTokenOption(),
		waitSecondsOption(),
		mcpgo.WithRawOutputSchema(viewSchema),
		mcpgo.WithReadOnlyHintAnnotation(true),
		mcpgo.WithOpenWorldHintAnnotation(true),
	)
}

type dagArgs struct {
	Code        string   `json:"code"`
	Language    string   `json:"language"`
	AuthToken   string   `json:"auth_token"`
	WaitSeconds *float64 `json:"wait_seconds"`
}

func (s *Server) handleDAG(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a dagArgs
	if err := bind(req, &a); err != nil {
		return toolError(err), nil
	}
	wait, err := waitDuration(a.WaitSeconds, DefaultWaitSeconds)
	if err != nil {
		return toolError(err), nil
	}
	if err := checkAuthToken(a.AuthToken); err != nil {
		return toolError(err), nil
	}
	return s.enqueueAndWait(ctx, req, jobs.DAGPayload{Code: a.Code, Language: a.Language}, a.AuthToken, wait)
}

func submitTool() mcpgo.Tool {
	return mcpgo.NewTool("submit_batch_task",
		mcpgo.WithToolTitle("Submit a batch task"),
		mcpgo.WithDescription("Submit a long batch task (code run on the platform, writing its output to a path) as one job whose state is the batch's: pending until the submit starts; active from the submit until the platform reports an end (the view's batch holds the platform's task_id, state and progress); then completed (result.data is the platform's final status, with result.output_uri), failed (the batch failed, or the submit was refused: see error) or cancelled. wait_seconds and get_job(job_id, wait_seconds) wait for that end. The task reaches the platform exactly once, however often the submit is retried; pass idempotency_key to make repeating this call safe (the same key answers the same job). cancel_job cancels the platform task too, whatever the job's state."),
		mcpgo.WithString("name", mcpgo.Required(), mcpgo.Description("A name for the task, e.g. aspect-beijing-2026."), mcpgo.MinLength(1), mcpgo.MaxLength(jobs.MaxNameLength)),
		mcpgo.WithString("code", mcpgo.Required(), mcpgo.Description("The task's code. At most 256 KiB."), mcpgo.MinLength(1), mcpgo.MaxLength(jobs.MaxCodeBytes)),
		mcpgo.WithObject("output", mcpgo.Required(), mcpgo.Description("Where the task writes its result."),
			mcpgo.Properties(map[string]any{
				"format": map[string]any{"type": "string", "description": "Output format, e.g. GeoTIFF, COG, GeoJSON, CSV, Parquet.", "minLength": 1, "maxLength": 32},
				"path":   map[string]any{"type": "string", "description": "Output path, e.g. /data/out/aspect.tif.", "minLength": 1, "maxLength": 1024},
			}),
			withRequiredProperties("format", "path")),
		mcpgo.WithString("idempotency_key", mcpgo.Description("Optional: your key for this submission; repeating the call with the same key answers the same job instead of submitting again. At most 128 characters."),
			mcpgo.MaxLength(jobs.MaxIdempotencyKey)),
		authTokenOption(),
		waitSecondsOption(),
		mcpgo.WithRawOutputSchema(viewSchema),
		mcpgo.WithOpenWorldHintAnnotation(true),
		mcpgo.WithIdempotentHintAnnotation(false),
	)
}

// withRequiredProperties marks an object argument's properties required.
func withRequiredProperties(names ...string) mcpgo.PropertyOption {
	return func(schema map[string]any) { schema["required"] = names }
}

type submitArgs struct {
	Name           string            `json:"name"`
	Code           string            `json:"code"`
	Output         *jobs.BatchOutput `json:"output"`
	IdempotencyKey string            `json:"idempotency_key"`
	AuthToken      string            `json:"auth_token"`
	WaitSeconds    *float64          `json:"wait_seconds"`
}

func (s *Server) handleSubmit(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a submitArgs
	if err := bind(req, &a); err != nil {
		return toolError(err), nil
	}
	wait, err := waitDuration(a.WaitSeconds, DefaultWaitSeconds)
	if err != nil {
		return toolError(err), nil
	}
	if a.Output == nil {
		return toolError(&jobs.FieldError{Field: "output", Problem: `is missing; give {"format": ..., "path": ...}`}), nil
	}
	if err := checkAuthToken(a.AuthToken); err != nil {
		return toolError(err), nil
	}
	p := jobs.BatchSubmitPayload{Name: a.Name, Code: a.Code, Output: *a.Output}
	var opts []jobs.EnqueueOption
	if a.IdempotencyKey != "" {
		opts = append(opts, jobs.WithIdempotencyKey(a.IdempotencyKey))
	}
	return s.enqueueAndWait(ctx, req, p, a.AuthToken, wait, opts...)
}

func statusTool() mcpgo.Tool {
	return mcpgo.NewTool("query_task_status",
		mcpgo.WithToolTitle("Batch task status"),
		mcpgo.WithDescription("Get the status of a platform batch task (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, with progress, message, and result or error). For a task one of your submit_batch_task jobs started: from its job's record when younger than max_age_seconds or final, else by asking the platform once (your concurrent queries share one call). For any other task, pass auth_token: the platform is asked with your own token (unless the operator lets the service token answer for tasks nobody submitted here). The status is the job view's result.data."),
		mcpgo.WithString("task_id", mcpgo.Required(), mcpgo.Description("The platform's batch task ID, e.g. bt-7f3a…, from a submit_batch_task job's batch.task_id."), mcpgo.MinLength(1), mcpgo.MaxLength(128)),
		mcpgo.WithNumber("max_age_seconds", mcpgo.Description("How old a recorded status may be to be answered without asking the platform (default 10, at most 86400; 0 always asks)."),
			mcpgo.Min(0), mcpgo.Max(MaxMaxAgeSeconds), mcpgo.DefaultNumber(DefaultMaxAgeSeconds)),
		authTokenOption(),
		waitSecondsOption(),
		mcpgo.WithRawOutputSchema(viewSchema),
		mcpgo.WithReadOnlyHintAnnotation(true),
		mcpgo.WithOpenWorldHintAnnotation(true),
	)
}

type statusArgs struct {
	TaskID        string   `json:"task_id"`
	MaxAgeSeconds *float64 `json:"max_age_seconds"`
	AuthToken     string   `json:"auth_token"`
	WaitSeconds   *float64 `json:"wait_seconds"`
}

func (s *Server) handleStatus(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a statusArgs
	if err := bind(req, &a); err != nil {
		return toolError(err), nil
	}
	wait, err := waitDuration(a.WaitSeconds, DefaultWaitSeconds)
	if err != nil {
		return toolError(err), nil
	}
	maxAge := float64(DefaultMaxAgeSeconds)
	if a.MaxAgeSeconds != nil {
		maxAge = *a.MaxAgeSeconds
	}
	if maxAge < 0 || maxAge > MaxMaxAgeSeconds || maxAge != maxAge {
		return toolError(&jobs.FieldError{Field: "max_age_seconds", Problem: fmt.Sprintf("must be between 0 and %d, got %v", MaxMaxAgeSeconds, maxAge)}), nil
	}
	if err := checkAuthToken(a.AuthToken); err != nil {
		return toolError(err), nil
	}
	owner := IdentityFrom(ctx)
	if AsTask(ctx) {
		wait = 0
	}
	v, err := s.opts.Jobs.QueryStatus(ctx, owner, a.TaskID, time.Duration(maxAge*float64(time.Second)), wait, a.AuthToken, progressReporter(ctx, req, wait))
	if err != nil {
		return toolError(err), nil
	}
	if !v.State.Final() {
		TaskCreated(ctx, v) // a recorded status answers at once, without a task
	}
	return viewResult(v), nil
}

func getJobTool() mcpgo.Tool {
	return mcpgo.NewTool("get_job",
		mcpgo.WithToolTitle("Get a job"),
		mcpgo.WithDescription("Get one of your jobs by job_id: its state, and its result or error once it ended. A batch job (submit_batch_task) is active while its batch runs, with batch {task_id, state, progress}, and ends completed, failed or cancelled as the batch did. With wait_seconds, wait up to that long for the job to end first."),
		mcpgo.WithString("job_id", mcpgo.Required(), mcpgo.Description("The job's ID, as a tool answered it."), mcpgo.MinLength(1), mcpgo.MaxLength(200)),
		mcpgo.WithNumber("wait_seconds", mcpgo.Description("How long to wait for the job to end, 0–60 seconds (default 0: answer at once)."),
			mcpgo.Min(0), mcpgo.Max(MaxWaitSeconds), mcpgo.DefaultNumber(0)),
		mcpgo.WithRawOutputSchema(viewSchema),
		mcpgo.WithReadOnlyHintAnnotation(true),
	)
}

type jobArgs struct {
	JobID       string   `json:"job_id"`
	WaitSeconds *float64 `json:"wait_seconds"`
}

func (s *Server) handleGetJob(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a jobArgs
	if err := bind(req, &a); err != nil {
		return toolError(err), nil
	}
	wait, err := waitDuration(a.WaitSeconds, 0)
	if err != nil {
		return toolError(err), nil
	}
	if a.JobID == "" {
		return toolError(&jobs.FieldError{Field: "job_id", Problem: "is empty"}), nil
	}
	v, err := s.opts.Jobs.Wait(ctx, IdentityFrom(ctx), a.JobID, wait, progressReporter(ctx, req, wait))
	if err != nil {
		return toolError(jobError(a.JobID, err)), nil
	}
	return viewResult(v), nil
}

func listJobsTool() mcpgo.Tool {
	states := make([]string, len(jobs.ValidStates))
	for i, st := range jobs.ValidStates {
		states[i] = string(st)
	}
	return mcpgo.NewTool("list_jobs",
		mcpgo.WithToolTitle("List your jobs"),
		mcpgo.WithDescription("List your jobs, newest first, optionally only those in one state. Answers {\"jobs\": [job views], \"count\": n}."),
		mcpgo.WithString("state", mcpgo.Description("Only jobs in this state."), mcpgo.Enum(states...)),
		mcpgo.WithInteger("limit", mcpgo.Description("Most jobs to list (default 20, at most 100)."),
			mcpgo.Min(1), mcpgo.Max(jobs.MaxListLimit), mcpgo.DefaultNumber(jobs.DefaultListLimit)),
		mcpgo.WithRawOutputSchema(listSchema),
		mcpgo.WithReadOnlyHintAnnotation(true),
	)
}

type listArgs struct {
	State string `json:"state"`
	Limit *int   `json:"limit"`
}

func (s *Server) handleListJobs(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a listArgs
	if err := bind(req, &a); err != nil {
		return toolError(err), nil
	}
	limit := 0
	if a.Limit != nil {
		if *a.Limit < 1 {
			return toolError(&jobs.FieldError{Field: "limit", Problem: fmt.Sprintf("must be between 1 and %d, got %d", jobs.MaxListLimit, *a.Limit)}), nil
		}
		limit = *a.Limit
	}
	list, err := s.opts.Jobs.List(ctx, IdentityFrom(ctx), jobs.State(a.State), limit)
	if err != nil {
		return toolError(err), nil
	}
	b, err := json.Marshal(map[string]any{"jobs": list, "count": len(list)})
	if err != nil {
		return toolError(err), nil
	}
	return mcpgo.NewToolResultStructured(json.RawMessage(b), string(b)), nil
}

func cancelJobTool() mcpgo.Tool {
	return mcpgo.NewTool("cancel_job",
		mcpgo.WithToolTitle("Cancel a job"),
		mcpgo.WithDescription("Cancel one of your jobs: a waiting job is removed, a running one is stopped. A batch job's platform task is cancelled too, whatever the job's state (before its submit, while the submit is in flight, while the batch runs); the answer is the job's view after a short wait: cancelled, or still active with cancel_requested true while the worker carries it out (within one check interval), or completed/failed if the batch ended first. A job that already ended is answered as it is."),
		mcpgo.WithString("job_id", mcpgo.Required(), mcpgo.Description("The job's ID."), mcpgo.MinLength(1), mcpgo.MaxLength(200)),
		mcpgo.WithRawOutputSchema(viewSchema),
		mcpgo.WithDestructiveHintAnnotation(true),
		mcpgo.WithIdempotentHintAnnotation(true),
	)
}

type cancelArgs struct {
	JobID string `json:"job_id"`
}

func (s *Server) handleCancelJob(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a cancelArgs
	if err := bind(req, &a); err != nil {
		return toolError(err), nil
	}
	if a.JobID == "" {
		return toolError(&jobs.FieldError{Field: "job_id", Problem: "is empty"}), nil
	}
	v, err := s.opts.Jobs.Cancel(ctx, IdentityFrom(ctx), a.JobID)
	if err != nil {
		return toolError(jobError(a.JobID, err)), nil
	}
	return viewResult(v), nil
}

// jobError says "job not found" alike for unknown jobs and other owners' jobs.
func jobError(id string, err error) error {
	if errors.Is(err, jobs.ErrNotFound) {
		return fmt.Errorf("job not found: %q (no job of yours has this ID: it expired, or it was lost with the queue's data after a Redis failover or a restart without persistence; submit it again)", truncateID(id))
	}
	return err
}

func truncateID(id string) string {
	if len(id) > 80 {
		return id[:80] + "…"
	}
	return id
}

// checkAuthToken bounds a caller's auth_token.
func checkAuthToken(tok string) error {
	if len(tok) > MaxAuthTokenLength {
		return &jobs.FieldError{Field: "auth_token", Problem: fmt.Sprintf("is longer than %d characters", MaxAuthTokenLength)}
	}
	return nil
}
