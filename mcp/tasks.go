package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
)

// MCP tasks over the job store. A task is a job seen through the protocol:
// the task ID is the job ID, the task is bound to the identity that owns the
// job, its status is the job's state and its result the job's. What the
// protocol adds (the TTL, the poll interval) is kept in Redis next to the
// job, so any replica answers any task.
//
// mcp-go runs tasks in one process's memory, so this layer answers the task
// methods itself, in front of mcp-go's streamable HTTP server, and passes
// every other message through, rewriting three answers: initialize and
// server/discover (the capability the client negotiated) and tools/list
// (each tool's execution.taskSupport). A tools/call that creates a task still
// runs the tool's handler in mcp-go; the handler sees AsTask and enqueues its
// job without waiting, and the layer answers the task instead of the result.

// ExtensionTasks is the identifier of the 2026-07-28 tasks extension
// (SEP-2663), advertised under capabilities.extensions.
const ExtensionTasks = "io.modelcontextprotocol/tasks"

// Task limits.
const (
	// DefaultPollInterval is the poll interval suggested for interactive jobs.
	DefaultPollInterval = time.Second
	// BatchPollInterval is the poll interval suggested for batch jobs.
	BatchPollInterval = 5 * time.Second
	// DefaultSessionTTL is how long an idle HTTP session is remembered.
	DefaultSessionTTL = 24 * time.Hour
	// taskListPage is the page size of tasks/list.
	taskListPage = 50
)

// JSON-RPC error codes the layer answers.
const (
	codeInvalidParams     = -32602
	codeMethodNotFound    = -32601
	codeInternal          = -32603
	codeHeaderMismatch    = -32020
	codeMissingCapability = -32021
)

// TaskOutcome is how a job that ended answers as a task: a tool result
// (IsError for a tool that failed), or, for a protocol-level failure, Err.
type TaskOutcome struct {
	Result *mcpgo.CallToolResult
	Err    *TaskError
}

// TaskError is a protocol-level error of a task: a JSON-RPC error code and
// message.
type TaskError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// TaskConfig configures the task layer of NewTaskHandler.
type TaskConfig struct {
	// Jobs is the job store. Required.
	Jobs *store.Client
	// Support is each tool's execution.taskSupport; a tool not named here
	// is "forbidden". Default: none (no tool creates tasks).
	Support map[string]mcpgo.TaskSupport
	// Outcome turns a job that ended into its task's answer. Default:
	// ViewOutcome.
	Outcome func(*jobs.View) TaskOutcome
	// PollInterval is the poll interval suggested for a job's task.
	// Default: BatchPollInterval for batch jobs, else DefaultPollInterval.
	PollInterval func(*jobs.View) time.Duration
	// SessionTTL is how long an idle HTTP session (protocol versions up to
	// 2025-11-25) is remembered in Redis. Default: DefaultSessionTTL.
	SessionTTL time.Duration
	// Logger receives the layer's logs. Default: discard.
	Logger *slog.Logger
}

// ViewOutcome answers a job's view as the tool result, as the tools do; a
// job that failed or was cancelled is a tool error (isError).
func ViewOutcome(v *jobs.View) TaskOutcome {
	res := viewResult(v)
	res.IsError = res.IsError || v.State == jobs.StateFailed || v.State == jobs.StateCancelled
	return TaskOutcome{Result: res}
}

func defaultPollInterval(v *jobs.View) time.Duration {
	switch v.Type {
	case jobs.TypeBatchSubmit, jobs.TypeBatchPoll:
		return BatchPollInterval
	}
	return DefaultPollInterval
}

// shape is what a client negotiated.
type shape string

const (
	shapeNone      shape = "none"
	shapeLegacy    shape = "2025-11-25"
	shapeExtension shape = "extension"
)

// taskCall is how a tool call that creates a task meets its handler.
type taskCall struct {
	view *jobs.View
}

type taskCallKey struct{}

// AsTask reports whether this tool call creates a task: then the handler
// enqueues its job, calls TaskCreated with the job's view and answers at
// once, without waiting for the job.
func AsTask(ctx context.Context) bool {
	_, ok := ctx.Value(taskCallKey{}).(*taskCall)
	return ok
}

// TaskCreated records the job a tool call enqueued as the call's task. It
// does nothing when the call does not create a task.
func TaskCreated(ctx context.Context, v *jobs.View) {
	if tc, ok := ctx.Value(taskCallKey{}).(*taskCall); ok {
		tc.view = v
	}
}

// httpContext carries the caller's identity and, for a call that creates a
// task, its taskCall from the HTTP request to the tool handler.
func httpContext(ctx context.Context, r *http.Request) context.Context {
	ctx = WithIdentity(ctx, IdentityFrom(r.Context()))
	if tc, ok := r.Context().Value(taskCallKey{}).(*taskCall); ok {
		ctx = context.WithValue(ctx, taskCallKey{}, tc)
	}
	return ctx
}

// NewTaskHandler returns mcp-go's streamable HTTP server for srv, with its
// sessions in Redis and the task layer in front. The caller's identity must
// be on the request's context (WithIdentity); tools that create tasks follow
// AsTask and TaskCreated. opts are passed to mcp-go after the layer's own.
// Close the handler (TaskHandler.Close) to stop its Redis subscription.
func NewTaskHandler(srv *mcpserver.MCPServer, cfg TaskConfig, opts ...mcpserver.StreamableHTTPOption) (TaskHandler, error) {
	if cfg.Jobs == nil {
		return nil, errMissingJobs
	}
	if cfg.Outcome == nil {
		cfg.Outcome = ViewOutcome
	}
	if cfg.PollInterval == nil {
		cfg.PollInterval = defaultPollInterval
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &taskLayer{cfg: cfg, rdb: cfg.Jobs.Redis(), log: cfg.Logger}
	l.sessions = &redisSessions{rdb: l.rdb, ttl: cfg.SessionTTL, cache: newSessionCache(l.rdb)}
	base := []mcpserver.StreamableHTTPOption{
		mcpserver.WithEndpointPath("/mcp"),
		mcpserver.WithSessionIdManagerResolver(l.sessions),
		mcpserver.WithHTTPContextFunc(httpContext),
	}
	l.next = mcpserver.NewStreamableHTTPServer(srv, append(base, opts...)...)
	return l, nil
}

// TaskHandler is the HTTP handler of NewTaskHandler.
type TaskHandler interface {
	http.Handler
	io.Closer
}

// Close stops the subscription to Redis's invalidations of the sessions
// (see sessionCache).
func (l *taskLayer) Close() error {
	l.sessions.cache.close()
	return nil
}

type taskLayer struct {
	cfg      TaskConfig
	rdb      redis.UniversalClient
	sessions *redisSessions
	log      *slog.Logger
	next     http.Handler
}

// rpcRequest is one JSON-RPC request.
type rpcRequest struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// requestMeta is what the layer reads of a request's params._meta.
type requestMeta struct {
	Meta struct {
		ProtocolVersion    string                    `json:"io.modelcontextprotocol/protocolVersion"`
		ClientCapabilities *mcpgo.ClientCapabilities `json:"io.modelcontextprotocol/clientCapabilities"`
	} `json:"_meta"`
}

func (l *taskLayer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = l.sessions.withRequestSession(r)
	if r.Method != http.MethodPost {
		l.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		http.Error(w, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	var req rpcRequest
	if json.Unmarshal(body, &req) != nil || req.Method == "" || len(req.ID) == 0 || string(req.ID) == "null" {
		// Batches, notifications and responses: mcp-go's.
		l.pass(w, r, body)
		return
	}
	switch req.Method {
	case "initialize":
		l.initialize(w, r, body, req)
	case "server/discover":
		l.discover(w, r, body, req)
	case "tools/list":
		l.toolsList(w, r, body, req)
	case "tools/call":
		l.toolsCall(w, r, body, req)
	case "tasks/get", "tasks/result", "tasks/list", "tasks/cancel", "tasks/update":
		l.tasks(w, r, req)
	default:
		l.pass(w, r, body)
	}
}

// pass hands a request to mcp-go.
func (l *taskLayer) pass(w http.ResponseWriter, r *http.Request, body []byte) {
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	l.next.ServeHTTP(w, r)
}

// negotiated returns what the client negotiated for this request: the
// extension when the request declares it in _meta (the 2026-07-28 wire, or a
// per-request opt-in), else for protocol versions up to 2025-11-25 what its
// session negotiated at initialize.
func (l *taskLayer) negotiated(r *http.Request, params json.RawMessage) (s shape, modern bool) {
	var m requestMeta
	_ = json.Unmarshal(params, &m)
	modern = mcpgo.IsModernProtocol(r.Header.Get("MCP-Protocol-Version")) || mcpgo.IsModernProtocol(m.Meta.ProtocolVersion)
	if caps := m.Meta.ClientCapabilities; caps != nil && caps.Extensions[ExtensionTasks] != nil {
		return shapeExtension, modern
	}
	if modern {
		return shapeNone, true
	}
	rs := requestSessionOf(r.Context())
	if rs == nil {
		return shapeNone, false
	}
	got := rs.read(r.Context())
	if got.err != nil {
		return shapeNone, false
	}
	switch shape(got.value) {
	case shapeLegacy, shapeExtension:
		return shape(got.value), false
	}
	return shapeNone, false
}

// capsShape is what an initialize request's capabilities ask for: the
// extension when declared, else the 2025-11-25 capability when declared.
func capsShape(caps mcpgo.ClientCapabilities) shape {
	switch {
	case caps.Extensions[ExtensionTasks] != nil:
		return shapeExtension
	case caps.Tasks != nil:
		return shapeLegacy
	}
	return shapeNone
}

func (l *taskLayer) initialize(w http.ResponseWriter, r *http.Request, body []byte, req rpcRequest) {
	var p struct {
		Capabilities mcpgo.ClientCapabilities `json:"capabilities"`
	}
	_ = json.Unmarshal(req.Params, &p)
	s := capsShape(p.Capabilities)
	rec := l.capture(r, body)
	if sid := rec.header.Get(mcpserver.HeaderKeySessionID); sid != "" && rec.status == http.StatusOK {
		err := l.rdb.SetArgs(r.Context(), sessionKey(sid), string(s), redis.SetArgs{Mode: "XX", TTL: l.cfg.SessionTTL}).Err()
		l.sessions.forget(sid)
		if err != nil && !errors.Is(err, redis.Nil) {
			l.log.WarnContext(r.Context(), "mcp: record session's task negotiation", slog.Any("error", err))
		}
	}
	rec.rewrite(w, func(result map[string]any) { advertise(result, s) })
}

func (l *taskLayer) discover(w http.ResponseWriter, r *http.Request, body []byte, req rpcRequest) {
	s, _ := l.negotiated(r, req.Params)
	l.capture(r, body).rewrite(w, func(result map[string]any) { advertise(result, s) })
}

// advertise adds to an initialize or discover result the capability the
// client negotiated, and only that one.
func advertise(result map[string]any, s shape) {
	caps, _ := result["capabilities"].(map[string]any)
	if caps == nil {
		caps = map[string]any{}
		result["capabilities"] = caps
	}
	delete(caps, "tasks")
	if ext, ok := caps["extensions"].(map[string]any); ok {
		delete(ext, ExtensionTasks)
		if len(ext) == 0 {
			delete(caps, "extensions")
		}
	}
	switch s {
	case shapeLegacy:
		caps["tasks"] = map[string]any{
			"list":     map[string]any{},
			"cancel":   map[string]any{},
			"requests": map[string]any{"tools": map[string]any{"call": map[string]any{}}},
		}
	case shapeExtension:
		ext, _ := caps["extensions"].(map[string]any)
		if ext == nil {
			ext = map[string]any{}
			caps["extensions"] = ext
		}
		ext[ExtensionTasks] = map[string]any{}
	}
}

func (l *taskLayer) support(tool string) mcpgo.TaskSupport {
	if s, ok := l.cfg.Support[tool]; ok {
		return s
	}
	return mcpgo.TaskSupportForbidden
}

func (l *taskLayer) toolsList(w http.ResponseWriter, r *http.Request, body []byte, req rpcRequest) {
	s, _ := l.negotiated(r, req.Params)
	if s == shapeNone {
		l.pass(w, r, body)
		return
	}
	l.capture(r, body).rewrite(w, func(result map[string]any) {
		tools, _ := result["tools"].([]any)
		for _, t := range tools {
			tool, ok := t.(map[string]any)
			if !ok {
				continue
			}
			name, _ := tool["name"].(string)
			exec, _ := tool["execution"].(map[string]any)
			if exec == nil {
				exec = map[string]any{}
				tool["execution"] = exec
			}
			exec["taskSupport"] = string(l.support(name))
		}
	})
}

func (l *taskLayer) toolsCall(w http.ResponseWriter, r *http.Request, body []byte, req rpcRequest) {
	var params map[string]json.RawMessage
	if json.Unmarshal(req.Params, &params) != nil {
		l.pass(w, r, body)
		return
	}
	var name string
	_ = json.Unmarshal(params["name"], &name)
	var hint *struct {
		TTL *int64 `json:"ttl"`
	}
	if raw, ok := params["task"]; ok {
		_ = json.Unmarshal(raw, &hint)
		// mcp-go must not run its own, in-memory tasks.
		delete(params, "task")
		req.Params, _ = json.Marshal(params)
		body, _ = json.Marshal(map[string]any{"jsonrpc": "2.0", "id": req.ID, "method": req.Method, "params": req.Params})
	}
	s, _ := l.negotiated(r, req.Params)
	support := l.support(name)
	asTask := false
	switch s {
	case shapeLegacy:
		if hint != nil {
			if support == mcpgo.TaskSupportForbidden {
				writeRPCError(w, http.StatusOK, req.ID, codeMethodNotFound, fmt.Sprintf("tool %q cannot run as a task (its execution.taskSupport is forbidden); call it without params.task", name))
				return
			}
			asTask = true
		}
	case shapeExtension:
		asTask = support != mcpgo.TaskSupportForbidden
	}
	if !asTask {
		l.pass(w, r, body)
		return
	}
	tc := &taskCall{}
	tr := r.WithContext(context.WithValue(r.Context(), taskCallKey{}, tc))
	rec := l.capture(tr, body)
	if tc.view == nil {
		// The tool answered without a job (an invalid argument, or an
		// answer it had at once): that answer stands.
		rec.copyTo(w)
		return
	}
	ttl := l.cfg.Jobs.Retention()
	if hint != nil && hint.TTL != nil && *hint.TTL > 0 {
		ttl = min(ttl, time.Duration(*hint.TTL)*time.Millisecond)
	}
	owner := IdentityFrom(r.Context())
	t, err := l.create(r.Context(), owner, name, tc.view, ttl)
	if err != nil {
		// The job runs, but without its task record no one could read it
		// as a task: stop it.
		_, _ = l.cfg.Jobs.Cancel(context.WithoutCancel(r.Context()), owner, tc.view.JobID)
		writeRPCError(w, http.StatusOK, req.ID, codeInternal, "could not record the task; try again: "+err.Error())
		return
	}
	l.log.InfoContext(r.Context(), "task created", slog.String("tool", name), slog.String("task_id", t.id), slog.String("owner", owner), slog.String("shape", string(s)))
	var result any
	if s == shapeLegacy {
		result = map[string]any{"task": t.legacy(tc.view)}
	} else {
		m := t.extension(tc.view, nil)
		m["resultType"] = "task"
		result = m
	}
	writeRPCResult(w, req.ID, result)
}

// tasks answers the task methods.
func (l *taskLayer) tasks(w http.ResponseWriter, r *http.Request, req rpcRequest) {
	var p struct {
		TaskID string `json:"taskId"`
		Cursor string `json:"cursor"`
	}
	_ = json.Unmarshal(req.Params, &p)
	s, modern := l.negotiated(r, req.Params)
	if modern {
		if err := checkHeaders(r, req.Method, p.TaskID); err != "" {
			writeRPCError(w, http.StatusBadRequest, req.ID, codeHeaderMismatch, err)
			return
		}
	}
	switch {
	case s == shapeNone && modern:
		writeRPC(w, http.StatusBadRequest, map[string]any{"jsonrpc": "2.0", "id": req.ID, "error": map[string]any{
			"code":    codeMissingCapability,
			"message": fmt.Sprintf("%s needs the %s extension: declare it in the request's _meta clientCapabilities.extensions", req.Method, ExtensionTasks),
			"data":    map[string]any{"requiredCapabilities": map[string]any{"extensions": map[string]any{ExtensionTasks: map[string]any{}}}},
		}})
		return
	case s == shapeNone:
		writeRPCError(w, http.StatusOK, req.ID, codeMethodNotFound, fmt.Sprintf("%s: this session did not negotiate tasks; declare capabilities.tasks (or the %s extension) at initialize", req.Method, ExtensionTasks))
		return
	case s == shapeExtension && (req.Method == "tasks/result" || req.Method == "tasks/list"):
		writeRPCError(w, http.StatusOK, req.ID, codeMethodNotFound, fmt.Sprintf("%s is not part of the %s extension; tasks/get inlines the result", req.Method, ExtensionTasks))
		return
	case s == shapeLegacy && req.Method == "tasks/update":
		writeRPCError(w, http.StatusOK, req.ID, codeMethodNotFound, "tasks/update is not part of 2025-11-25 tasks")
		return
	}
	ctx := r.Context()
	owner := IdentityFrom(ctx)
	if owner == "" {
		writeRPCError(w, http.StatusOK, req.ID, codeInternal, "no caller identity")
		return
	}
	if req.Method == "tasks/list" {
		l.list(w, r, req, owner, p.Cursor)
		return
	}
	if p.TaskID == "" {
		writeRPCError(w, http.StatusOK, req.ID, codeInvalidParams, "params.taskId is missing")
		return
	}
	t, v, err := l.load(ctx, owner, p.TaskID)
	if err != nil {
		l.answerLoadError(w, req.ID, p.TaskID, err)
		return
	}
	switch req.Method {
	case "tasks/get":
		if s == shapeLegacy {
			writeRPCResult(w, req.ID, t.legacy(v))
			return
		}
		m := t.extension(v, l.cfg.Outcome)
		m["resultType"] = "complete"
		writeRPCResult(w, req.ID, m)
	case "tasks/result":
		l.result(w, r, req, t, v)
	case "tasks/cancel":
		if s == shapeLegacy && v.State.Final() {
			writeRPCError(w, http.StatusOK, req.ID, codeInvalidParams, fmt.Sprintf("task %s has already ended (%s); a task that ended cannot be cancelled", p.TaskID, legacyStatus(v)))
			return
		}
		if !v.State.Final() {
			if v, err = l.cfg.Jobs.Cancel(ctx, owner, p.TaskID); err != nil {
				l.answerLoadError(w, req.ID, p.TaskID, err)
				return
			}
		}
		if s == shapeLegacy {
			writeRPCResult(w, req.ID, t.legacy(v))
			return
		}
		writeRPCResult(w, req.ID, map[string]any{"resultType": "complete"})
	case "tasks/update":
		writeRPCError(w, http.StatusOK, req.ID, codeInvalidParams, fmt.Sprintf("task %s does not wait for input (its status is %s)", p.TaskID, extensionStatus(v, l.cfg.Outcome)))
	}
}

// result answers tasks/result (2025-11-25): it waits for the job to end,
// bounded by the request's context, and answers what tools/call would have.
func (l *taskLayer) result(w http.ResponseWriter, r *http.Request, req rpcRequest, t *taskRecord, v *jobs.View) {
	ctx := r.Context()
	owner := IdentityFrom(ctx)
	var err error
	for !v.State.Final() {
		if ctx.Err() != nil {
			writeRPCError(w, http.StatusOK, req.ID, codeInternal, fmt.Sprintf("task %s has not ended yet (%s); call tasks/result again", t.id, legacyStatus(v)))
			return
		}
		if v, err = l.cfg.Jobs.Wait(ctx, owner, t.id, time.Minute, nil); err != nil {
			l.answerLoadError(w, req.ID, t.id, err)
			return
		}
	}
	out := l.cfg.Outcome(v)
	if out.Err != nil {
		writeRPCError(w, http.StatusOK, req.ID, out.Err.Code, out.Err.Message)
		return
	}
	m, err := toMap(out.Result)
	if err != nil {
		writeRPCError(w, http.StatusOK, req.ID, codeInternal, err.Error())
		return
	}
	meta, _ := m["_meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["io.modelcontextprotocol/related-task"] = map[string]any{"taskId": t.id}
	m["_meta"] = meta
	writeRPCResult(w, req.ID, m)
}

// list answers tasks/list (2025-11-25): the caller's tasks, newest first.
func (l *taskLayer) list(w http.ResponseWriter, r *http.Request, req rpcRequest, owner, cursor string) {
	ctx := r.Context()
	offset := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 0 {
			writeRPCError(w, http.StatusOK, req.ID, codeInvalidParams, "invalid cursor: pass the nextCursor of the previous page")
			return
		}
		offset = n
	}
	ids, err := l.rdb.ZRevRange(ctx, taskIndexKey(owner), int64(offset), int64(offset+taskListPage)).Result()
	if err != nil {
		writeRPCError(w, http.StatusOK, req.ID, codeInternal, "task store unavailable; try again")
		return
	}
	tasks := []any{}
	for i, id := range ids {
		if i == taskListPage {
			break
		}
		t, v, err := l.load(ctx, owner, id)
		if errors.Is(err, jobs.ErrNotFound) {
			_ = l.rdb.ZRem(ctx, taskIndexKey(owner), id).Err()
			continue
		}
		if err != nil {
			writeRPCError(w, http.StatusOK, req.ID, codeInternal, "task store unavailable; try again")
			return
		}
		tasks = append(tasks, t.legacy(v))
	}
	result := map[string]any{"tasks": tasks}
	if len(ids) > taskListPage {
		result["nextCursor"] = strconv.Itoa(offset + taskListPage)
	}
	writeRPCResult(w, req.ID, result)
}

func (l *taskLayer) answerLoadError(w http.ResponseWriter, id json.RawMessage, taskID string, err error) {
	if errors.Is(err, jobs.ErrNotFound) {
		writeRPCError(w, http.StatusOK, id, codeInvalidParams, fmt.Sprintf("task not found: %q (no task of yours has this ID; it may have expired)", truncateID(taskID)))
		return
	}
	writeRPCError(w, http.StatusOK, id, codeInternal, err.Error())
}

// checkHeaders checks the 2026-07-28 routing headers of a task method:
// Mcp-Method must name the method and Mcp-Name the task.
func checkHeaders(r *http.Request, method, taskID string) string {
	if got := r.Header.Get(mcpgo.HeaderMethod); got != method {
		return fmt.Sprintf("header %s is %q; it must match the body's method %q", mcpgo.HeaderMethod, got, method)
	}
	switch method {
	case "tasks/get", "tasks/update", "tasks/cancel":
		got, _ := mcpgo.DecodeHeaderValue(r.Header.Get(mcpgo.HeaderName))
		if got != taskID {
			return fmt.Sprintf("header %s is %q; it must match params.taskId %q", mcpgo.HeaderName, got, taskID)
		}
	}
	return ""
}

// Task statuses, as both shapes name them.
const (
	statusWorking   = "working"
	statusCompleted = "completed"
	statusFailed    = "failed"
	statusCancelled = "cancelled"
)

func legacyStatus(v *jobs.View) string {
	switch v.State {
	case jobs.StateCompleted:
		return statusCompleted
	case jobs.StateFailed:
		return statusFailed
	case jobs.StateCancelled:
		return statusCancelled
	}
	return statusWorking
}

// extensionStatus follows SEP-2663: a tool that failed is completed (with
// isError); failed is for protocol errors.
func extensionStatus(v *jobs.View, outcome func(*jobs.View) TaskOutcome) string {
	if v.State == jobs.StateFailed {
		if outcome(v).Err != nil {
			return statusFailed
		}
		return statusCompleted
	}
	return legacyStatus(v)
}

// statusMessage says where a job is, in words.
func statusMessage(v *jobs.View) string {
	switch v.State {
	case jobs.StatePending:
		return "waiting for a worker"
	case jobs.StateScheduled:
		if v.Batch != nil && v.Batch.State != "" {
			return batchMessage(v.Batch)
		}
		if v.NextAttemptAt != nil {
			return "scheduled for " + v.NextAttemptAt.Format(time.RFC3339)
		}
		return "scheduled"
	case jobs.StateActive:
		if v.Batch != nil && v.Batch.State != "" {
			return batchMessage(v.Batch)
		}
		return fmt.Sprintf("running (attempt %d)", v.Attempts)
	case jobs.StateRetry:
		msg := fmt.Sprintf("attempt %d failed", v.Attempts)
		if v.Error != nil {
			msg += ": " + v.Error.Message
		}
		if v.NextAttemptAt != nil {
			msg += "; next attempt at " + v.NextAttemptAt.Format(time.RFC3339)
		}
		return msg
	case jobs.StateFailed, jobs.StateCancelled:
		if v.Error != nil {
			return v.Error.Message
		}
	}
	return ""
}

// batchMessage is the platform's progress of a batch task.
func batchMessage(b *jobs.BatchStatus) string {
	var st struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(b.Status, &st)
	msg := fmt.Sprintf("platform task %s is %s, progress %d%%", b.TaskID, b.State, b.Progress)
	if st.Message != "" {
		msg += ": " + st.Message
	}
	return msg
}

func lastUpdated(v *jobs.View, created time.Time) time.Time {
	t := created
	if v.CompletedAt != nil && v.CompletedAt.After(t) {
		t = *v.CompletedAt
	}
	if v.Batch != nil && v.Batch.ObservedAt != nil && v.Batch.ObservedAt.After(t) {
		t = *v.Batch.ObservedAt
	}
	return t
}

func toMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return m, nil
}

func writeRPCResult(w http.ResponseWriter, id json.RawMessage, result any) {
	writeRPC(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": id, "result": result})
}

func writeRPCError(w http.ResponseWriter, status int, id json.RawMessage, code int, msg string) {
	writeRPC(w, status, map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": code, "message": msg}})
}

func writeRPC(w http.ResponseWriter, status int, msg any) {
	b, err := json.Marshal(msg)
	if err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// recorder captures mcp-go's answer to one request. It does not stream, so
// mcp-go answers in one piece.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (rec *recorder) Header() http.Header { return rec.header }
func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.body.Write(b)
}
func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
}

func (l *taskLayer) capture(r *http.Request, body []byte) *recorder {
	rec := &recorder{header: http.Header{}}
	l.pass(rec, r, body)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec
}

func (rec *recorder) copyTo(w http.ResponseWriter) {
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

// rewrite passes the captured answer on, after edit changed its result;
// an error, or an answer it cannot read, passes unchanged.
func (rec *recorder) rewrite(w http.ResponseWriter, edit func(result map[string]any)) {
	msg := rec.message()
	result, ok := msg["result"].(map[string]any)
	if rec.status != http.StatusOK || !ok {
		rec.copyTo(w)
		return
	}
	edit(result)
	for k, v := range rec.header {
		if !strings.EqualFold(k, "Content-Length") {
			w.Header()[k] = v
		}
	}
	writeRPC(w, http.StatusOK, msg)
}

// message is the JSON-RPC response in the captured answer, sent as JSON or
// as server-sent events.
func (rec *recorder) message() map[string]any {
	var msg map[string]any
	if !strings.HasPrefix(rec.header.Get("Content-Type"), "text/event-stream") {
		_ = json.Unmarshal(rec.body.Bytes(), &msg)
		return msg
	}
	for line := range strings.SplitSeq(rec.body.String(), "\n") {
		data, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "data:")
		if !ok {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(strings.TrimSpace(data)), &m) == nil {
			if _, ok := m["method"]; !ok {
				msg = m
			}
		}
	}
	return msg
}
