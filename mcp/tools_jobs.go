package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
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

// queryArgs are run_big_query's arguments.
type queryArgs struct {
	SQL         string   `json:"sql" jsonschema:"The SQL query, e.g. SELECT region, area_km2 FROM landcover WHERE class = 'forest' LIMIT 10. At most 256 KiB."`
	MaxRows     *int     `json:"max_rows,omitempty" jsonschema:"Most rows to return (default 1000, at most 100000); truncated says whether more matched."`
	AuthToken   string   `json:"auth_token,omitempty"`
	WaitSeconds *float64 `json:"wait_seconds,omitempty"`
}

var queryArgsSchema = mustSchema[queryArgs](func(props map[string]*jsonschema.Schema) {
	lengthOf(props["sql"], 1, jobs.MaxCodeBytes)
	rangeOf(props["max_rows"], 1, jobs.MaxMaxRows, jobs.DefaultMaxRows)
	platformArgs(props)
})

func queryTool() mcpgo.Tool {
	return mcpgo.NewTool("run_big_query",
		mcpgo.WithToolTitle("Big-data SQL query"),
		mcpgo.WithDescription("Run a SQL SELECT on the platform's big-data engine (tables such as landcover and elevation_stats) and return columns, rows, row_count, truncated and bytes_scanned. Runs as a durable job; answers the job view, with the result when it ends within wait_seconds. A query the platform cannot parse fails with its parser's message."),
		withSchemas(queryArgsSchema, viewSchema),
		annotations(true, false, false, true),
	)
}

func (s *Server) handleQuery(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a queryArgs
	if err := queryArgsSchema.bind(req, &a); err != nil {
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

// dagArgs are execute_code_to_dag's arguments.
type dagArgs struct {
	Code        string   `json:"code" jsonschema:"The script, e.g. var dem = Image('dem_30m'); var a = dem.aspect(); Export(a, 'out'). At most 256 KiB."`
	Language    string   `json:"language" jsonschema:"The script's language."`
	AuthToken   string   `json:"auth_token,omitempty"`
	WaitSeconds *float64 `json:"wait_seconds,omitempty"`
}

var dagArgsSchema = mustSchema[dagArgs](func(props map[string]*jsonschema.Schema) {
	lengthOf(props["code"], 1, jobs.MaxCodeBytes)
	enumOf(props["language"], jobs.Languages...)
	platformArgs(props)
})

func dagTool() mcpgo.Tool {
	return mcpgo.NewTool("execute_code_to_dag",
		mcpgo.WithToolTitle("Compile code to a DAG"),
		mcpgo.WithDescription("Compile a geospatial script (JavaScript or Python, in the platform's Image/Export style) into the platform's dataflow graph: nodes (id, op, args), edges and node_count. Runs as a durable job; answers the job view. Code the platform cannot parse fails with the parser's line and column."),
		withSchemas(dagArgsSchema, viewSchema),
		annotations(true, false, false, true),
	)
}

func (s *Server) handleDAG(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a dagArgs
	if err := dagArgsSchema.bind(req, &a); err != nil {
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

// submitArgs are submit_batch_task's arguments.
type submitArgs struct {
	Name           string           `json:"name" jsonschema:"A name for the task, e.g. aspect-beijing-2026."`
	Code           string           `json:"code" jsonschema:"The task's code. At most 256 KiB."`
	Output         jobs.BatchOutput `json:"output" jsonschema:"Where the task writes its result."`
	IdempotencyKey string           `json:"idempotency_key,omitempty" jsonschema:"Optional: your key for this submission; repeating the call with the same key answers the same job instead of submitting again. At most 128 characters."`
	AuthToken      string           `json:"auth_token,omitempty"`
	WaitSeconds    *float64         `json:"wait_seconds,omitempty"`
}

var submitArgsSchema = mustSchema[submitArgs](func(props map[string]*jsonschema.Schema) {
	lengthOf(props["name"], 1, jobs.MaxNameLength)
	lengthOf(props["code"], 1, jobs.MaxCodeBytes)
	lengthOf(props["output"].Properties["format"], 1, jobs.MaxOutputFormat)
	lengthOf(props["output"].Properties["path"], 1, jobs.MaxOutputPath)
	props["idempotency_key"].MaxLength = ptr(jobs.MaxIdempotencyKey)
	platformArgs(props)
})

func submitTool() mcpgo.Tool {
	return mcpgo.NewTool("submit_batch_task",
		mcpgo.WithToolTitle("Submit a batch task"),
		mcpgo.WithDescription("Submit a long batch task (code run on the platform, writing its output to a path) as one job whose state is the batch's: pending until the submit starts; active from the submit until the platform reports an end (the view's batch holds the platform's task_id, state and progress); then completed (result.data is the platform's final status, with result.output_uri), failed (the batch failed, or the submit was refused: see error) or cancelled. wait_seconds and get_job(job_id, wait_seconds) wait for that end. The task reaches the platform exactly once, however often the submit is retried; pass idempotency_key to make repeating this call safe (the same key answers the same job). cancel_job cancels the platform task too, whatever the job's state."),
		withSchemas(submitArgsSchema, viewSchema),
		annotations(false, false, false, true),
	)
}

func (s *Server) handleSubmit(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a submitArgs
	if err := submitArgsSchema.bind(req, &a); err != nil {
		return toolError(err), nil
	}
	wait, err := waitDuration(a.WaitSeconds, DefaultWaitSeconds)
	if err != nil {
		return toolError(err), nil
	}
	if err := checkAuthToken(a.AuthToken); err != nil {
		return toolError(err), nil
	}
	p := jobs.BatchSubmitPayload{Name: a.Name, Code: a.Code, Output: a.Output}
	var opts []store.EnqueueOption
	if a.IdempotencyKey != "" {
		opts = append(opts, store.WithIdempotencyKey(a.IdempotencyKey))
	}
	return s.enqueueAndWait(ctx, req, p, a.AuthToken, wait, opts...)
}

// statusArgs are query_task_status's arguments.
type statusArgs struct {
	TaskID        string   `json:"task_id" jsonschema:"The platform's batch task ID, e.g. bt-7f3a…, from a submit_batch_task job's batch.task_id."`
	MaxAgeSeconds *float64 `json:"max_age_seconds,omitempty" jsonschema:"How old a recorded status may be to be answered without asking the platform (default 10, at most 86400; 0 always asks)."`
	AuthToken     string   `json:"auth_token,omitempty"`
	WaitSeconds   *float64 `json:"wait_seconds,omitempty"`
}

var statusArgsSchema = mustSchema[statusArgs](func(props map[string]*jsonschema.Schema) {
	lengthOf(props["task_id"], 1, 128)
	rangeOf(props["max_age_seconds"], 0, MaxMaxAgeSeconds, DefaultMaxAgeSeconds)
	platformArgs(props)
})

func statusTool() mcpgo.Tool {
	return mcpgo.NewTool("query_task_status",
		mcpgo.WithToolTitle("Batch task status"),
		mcpgo.WithDescription("Get the status of a platform batch task (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, with progress, message, and result or error). For a task one of your submit_batch_task jobs started: from its job's record when younger than max_age_seconds or final, else by asking the platform once (your concurrent queries share one call). For any other task, pass auth_token: the platform is asked with your own token (unless the operator lets the service token answer for tasks nobody submitted here). The status is the job view's result.data."),
		withSchemas(statusArgsSchema, viewSchema),
		annotations(true, false, false, true),
	)
}

func (s *Server) handleStatus(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a statusArgs
	if err := statusArgsSchema.bind(req, &a); err != nil {
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

// jobArgs are get_job's arguments.
type jobArgs struct {
	JobID       string   `json:"job_id" jsonschema:"The job's ID, as a tool answered it."`
	WaitSeconds *float64 `json:"wait_seconds,omitempty" jsonschema:"How long to wait for the job to end, 0–60 seconds (default 0: answer at once)."`
}

var jobArgsSchema = mustSchema[jobArgs](func(props map[string]*jsonschema.Schema) {
	lengthOf(props["job_id"], 1, 200)
	rangeOf(props["wait_seconds"], 0, MaxWaitSeconds, 0)
})

func getJobTool() mcpgo.Tool {
	return mcpgo.NewTool("get_job",
		mcpgo.WithToolTitle("Get a job"),
		mcpgo.WithDescription("Get one of your jobs by job_id: its state, and its result or error once it ended. A batch job (submit_batch_task) is active while its batch runs, with batch {task_id, state, progress}, and ends completed, failed or cancelled as the batch did. With wait_seconds, wait up to that long for the job to end first."),
		withSchemas(jobArgsSchema, viewSchema),
		annotations(true, false, true, false),
	)
}

func (s *Server) handleGetJob(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a jobArgs
	if err := jobArgsSchema.bind(req, &a); err != nil {
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

// listArgs are list_jobs's arguments.
type listArgs struct {
	State string `json:"state,omitempty" jsonschema:"Only jobs in this state."`
	Limit *int   `json:"limit,omitempty" jsonschema:"Most jobs to list (default 20, at most 100)."`
}

var listArgsSchema = mustSchema[listArgs](func(props map[string]*jsonschema.Schema) {
	states := make([]string, len(jobs.ValidStates))
	for i, st := range jobs.ValidStates {
		states[i] = string(st)
	}
	enumOf(props["state"], states...)
	rangeOf(props["limit"], 1, jobs.MaxListLimit, jobs.DefaultListLimit)
})

func listJobsTool() mcpgo.Tool {
	return mcpgo.NewTool("list_jobs",
		mcpgo.WithToolTitle("List your jobs"),
		mcpgo.WithDescription("List your jobs, newest first, optionally only those in one state. Answers {\"jobs\": [job views], \"count\": n}."),
		withSchemas(listArgsSchema, listSchema),
		annotations(true, false, true, false),
	)
}

func (s *Server) handleListJobs(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a listArgs
	if err := listArgsSchema.bind(req, &a); err != nil {
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
	b, err := json.Marshal(listOutput{Jobs: list, Count: len(list)})
	if err != nil {
		return toolError(err), nil
	}
	return mcpgo.NewToolResultStructured(json.RawMessage(b), string(b)), nil
}

// cancelArgs are cancel_job's arguments.
type cancelArgs struct {
	JobID string `json:"job_id" jsonschema:"The job's ID."`
}

var cancelArgsSchema = mustSchema[cancelArgs](func(props map[string]*jsonschema.Schema) {
	lengthOf(props["job_id"], 1, 200)
})

func cancelJobTool() mcpgo.Tool {
	return mcpgo.NewTool("cancel_job",
		mcpgo.WithToolTitle("Cancel a job"),
		mcpgo.WithDescription("Cancel one of your jobs: a waiting job is removed, a running one is stopped. A batch job's platform task is cancelled too, whatever the job's state (before its submit, while the submit is in flight, while the batch runs); the answer is the job's view after a short wait: cancelled, or still active with cancel_requested true while the worker carries it out (within one check interval), or completed/failed if the batch ended first. A job that already ended is answered as it is."),
		withSchemas(cancelArgsSchema, viewSchema),
		annotations(false, true, true, false),
	)
}

func (s *Server) handleCancelJob(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	var a cancelArgs
	if err := cancelArgsSchema.bind(req, &a); err != nil {
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
