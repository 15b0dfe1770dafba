package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mcpclient "github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
)

// Job kinds of the workload.
const (
	kindAspect   = "aspect"
	kindQuery    = "query"
	kindDAG      = "dag"
	kindSubmit   = "submit"
	kindBadQuery = "bad_query" // SQL the platform refuses: the expected failure
)

// workload is the mix of jobs a scenario drives through MCP, spread over
// a period so that the scenario's trouble hits jobs in every stage.
type workload struct {
	aspect, query, dag, submit, badQuery int
	// spread is how long the submissions take. Default: 20s.
	spread time.Duration
}

// defaultWorkload is 300 jobs: 110 aspect analyses over small boxes, 60
// queries, 60 code-to-DAG compilations, 60 batch submits (each followed
// to its end by a poll job) and 10 queries the platform refuses.
var defaultWorkload = workload{aspect: 110, query: 60, dag: 60, submit: 60, badQuery: 10}

func (w workload) total() int { return w.aspect + w.query + w.dag + w.submit + w.badQuery }

// kinds lists one kind per job, interleaved.
func (w workload) kinds() []string {
	left := map[string]int{kindAspect: w.aspect, kindQuery: w.query, kindDAG: w.dag, kindSubmit: w.submit, kindBadQuery: w.badQuery}
	order := []string{kindAspect, kindSubmit, kindQuery, kindAspect, kindDAG, kindBadQuery}
	var out []string
	for len(out) < w.total() {
		for _, k := range order {
			if left[k] > 0 {
				out = append(out, k)
				left[k]--
			}
		}
	}
	return out
}

// outcome is how one job ended, as MCP told it.
type outcome struct {
	i        int
	kind     string
	jobID    string
	state    string
	attempts int
	errCode  int
	errMsg   string
	taskID   string // submits: the platform task
	batch    string // submits: the platform task's final state
	problem  string // what went wrong in the harness's view, if anything
	// sent is when the job's enqueueing call was first sent.
	sent time.Time
	// lost says whether get_job reported the job lost (not found: gone
	// with Redis's data): "job", or "" when not.
	lost string
}

// jobView is the job view as the workload reads it.
type jobView struct {
	JobID    string `json:"job_id"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	Result   *struct {
		Data json.RawMessage `json:"data"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Class   string `json:"class"`
		Message string `json:"message"`
	} `json:"error"`
	Batch *struct {
		TaskID string `json:"task_id"`
		State  string `json:"state"`
	} `json:"batch"`
}

func (v jobView) final() bool {
	return v.State == "completed" || v.State == "failed" || v.State == "cancelled"
}

// driver runs a workload against a cluster and counts what it sees.
type driver struct {
	t        *testing.T
	scenario string
	clients  []*mcpclient.Client

	enqueued    atomic.Int64 // jobs accepted by MCP
	ended       atomic.Int64 // jobs (and their poll jobs) that reached a final state
	unavailable atomic.Int64 // tool errors saying the queue (Redis) is unavailable
	protocol    atomic.Int64 // transport or JSON-RPC errors
	uncertain   atomic.Int64 // tool errors naming a job that may run (then followed with get_job)
	someJob     atomic.Value // string: the ID of the latest job enqueued

	mu         sync.Mutex
	toolErrors []string // the text of every tool error a call answered

	// mayLose, when set, says whether get_job may report a job lost (gone
	// with Redis's data); by default no job may be lost.
	mayLose func(o outcome) bool
}

// toolError records the text of a tool error answered to any call.
func (d *driver) toolError(text string) {
	d.mu.Lock()
	d.toolErrors = append(d.toolErrors, text)
	d.mu.Unlock()
}

// told reports whether some tool error named the job ID.
func (d *driver) told(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, text := range d.toolErrors {
		if strings.Contains(text, id) {
			return true
		}
	}
	return false
}

func newDriver(t *testing.T, c *cluster, scenario string, clients int) *driver {
	d := &driver{t: t, scenario: scenario}
	for range clients {
		d.clients = append(d.clients, c.client(t))
	}
	return d
}

// run drives the workload and answers every job's outcome.
func (d *driver) run(ctx context.Context, w workload) []outcome {
	if w.spread == 0 {
		w.spread = 20 * time.Second
	}
	kinds := w.kinds()
	out := make([]outcome, len(kinds))
	interval := w.spread / time.Duration(len(kinds))
	var wg sync.WaitGroup
	for i, kind := range kinds {
		wg.Go(func() {
			out[i] = d.job(ctx, i, kind)
		})
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
	wg.Wait()
	return out
}

// job submits one job and waits for it to end (a batch job, for its batch
// to end).
func (d *driver) job(ctx context.Context, i int, kind string) outcome {
	o := outcome{i: i, kind: kind, sent: time.Now()}
	c := d.clients[i%len(d.clients)]
	tool, args := jobArgs(d.scenario, i, kind)
	v, err := d.view(ctx, c, tool, args)
	if err != nil {
		o.problem = "enqueue: " + err.Error()
		return o
	}
	d.enqueued.Add(1)
	d.someJob.Store(v.JobID)
	o.jobID = v.JobID
	if v, err = d.await(ctx, c, v); errors.Is(err, errLost) {
		o.lost = "job"
		d.ended.Add(1)
		return o
	} else if err != nil {
		o.problem = "wait: " + err.Error()
		return o
	}
	o.state, o.attempts = v.State, v.Attempts
	if v.Error != nil {
		o.errCode, o.errMsg = v.Error.Code, v.Error.Message
	}
	if kind == kindSubmit && v.Batch != nil {
		// A batch job ends when its batch does.
		o.taskID, o.batch = v.Batch.TaskID, v.Batch.State
	}
	d.ended.Add(1)
	return o
}

// jobArgs answers the tool and arguments of job i; none waits.
func jobArgs(scenario string, i int, kind string) (string, map[string]any) {
	switch kind {
	case kindAspect:
		lon, lat := 100+float64(i%60)*0.5, 25+float64(i%20)*0.5
		return "coverage_aspect_analysis", map[string]any{"coverage_id": "dem_30m",
			"bbox": []float64{lon, lat, lon + 0.01, lat + 0.01}, "wait_seconds": 0}
	case kindQuery:
		return "run_big_query", map[string]any{"sql": fmt.Sprintf("SELECT region, area_km2 FROM landcover WHERE class = 'forest' LIMIT %d", 1+i%50), "wait_seconds": 0}
	case kindDAG:
		return "execute_code_to_dag", map[string]any{"code": fmt.Sprintf("var dem = Image('dem_30m'); var a = dem.aspect(); Export(a, 'out_%d')", i),
			"language": "javascript", "wait_seconds": 0}
	case kindSubmit:
		// The key makes a repeated call (after a queue-unavailable error)
		// answer the same job instead of submitting twice.
		return "submit_batch_task", map[string]any{"name": fmt.Sprintf("chaos-%s-%d", scenario, i),
			"code": "var a = Image('dem_30m').aspect()", "output": map[string]any{"format": "GeoTIFF", "path": fmt.Sprintf("/data/out/chaos-%d.tif", i)},
			"idempotency_key": fmt.Sprintf("chaos-%s-%d", scenario, i), "wait_seconds": 0}
	default:
		return "run_big_query", map[string]any{"sql": "SELEC nonsense", "wait_seconds": 0}
	}
}

// await calls get_job (waiting up to 20 s at a time) until the job ends.
func (d *driver) await(ctx context.Context, c *mcpclient.Client, v *jobView) (*jobView, error) {
	for !v.final() {
		next, err := d.view(ctx, c, "get_job", map[string]any{"job_id": v.JobID, "wait_seconds": 20})
		if err != nil {
			return v, err
		}
		v = next
	}
	return v, nil
}

// view calls a tool that answers a job view. A tool error saying the
// queue is unavailable (Redis down) is counted and the call repeated; a
// transport error is counted and repeated; any other tool error is
// returned.
func (d *driver) view(ctx context.Context, c *mcpclient.Client, tool string, args map[string]any) (*jobView, error) {
	for {
		text, isErr, err := callTool(ctx, c, tool, args, 60*time.Second)
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%s: gave up: %w (last: %v %s)", tool, ctx.Err(), err, text)
		case err != nil:
			d.protocol.Add(1)
			d.t.Logf("%s: protocol error: %v", tool, err)
		case isErr && strings.HasPrefix(text, "job not found"):
			return nil, fmt.Errorf("%w: %s", errLost, text)
		case isErr && uncertainJob.MatchString(text):
			// The job is queued, or may be: follow it, as its error says.
			if d.uncertain.Add(1) <= 3 {
				d.t.Logf("%s answered a job that may run: %s", tool, text)
			}
			d.toolError(text)
			return &jobView{JobID: uncertainJob.FindStringSubmatch(text)[1], State: "pending"}, nil
		case isErr && unavailable(text):
			d.unavailable.Add(1)
			d.toolError(text)
		case isErr:
			return nil, fmt.Errorf("%s: tool error: %s", tool, text)
		default:
			var v jobView
			if err := json.Unmarshal([]byte(text), &v); err != nil || v.JobID == "" {
				return nil, fmt.Errorf("%s answered %q; want a job view", tool, text)
			}
			return &v, nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// errLost is get_job's answer for a job it does not know (lost with
// Redis's data, in the scenarios that lose data).
var errLost = errors.New("reported lost")

// uncertainJob matches a tool error that names a job that is (or may be)
// queued although the call failed: Redis did not confirm the enqueue, or
// fewer replicas than REDIS_WAIT_REPLICAS acknowledged it.
var uncertainJob = regexp.MustCompile(`(?:may still run as|is queued as) ([a-z_]+-[0-9a-f-]+)`)

// unavailable reports whether a tool error says that Redis or the queue
// cannot be reached.
func unavailable(text string) bool {
	l := strings.ToLower(text)
	return strings.Contains(l, "unavailable") || strings.Contains(l, "redis")
}

// callTool calls a tool within limit and answers its text and whether it
// is a tool error.
func callTool(ctx context.Context, c *mcpclient.Client, tool string, args map[string]any, limit time.Duration) (string, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	res, err := c.CallTool(cctx, mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: tool, Arguments: args}})
	if err != nil {
		return "", false, err
	}
	var b strings.Builder
	for _, ct := range res.Content {
		if tc, ok := ct.(mcpgo.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String(), res.IsError, nil
}

// result is a scenario's row in the results table.
type result struct {
	scenario                                   string
	submitted, completed, failed, duplicated   int
	authCalls                                  int64
	duration                                   time.Duration
	platformCalls, faults, replays, retriedJob int64
	unavailable, protocol                      int64
	// lost counts jobs (or their poll jobs) get_job reported lost.
	lost int
	// phantoms are jobs that ran although no MCP answer gave their ID: a
	// call answered an error, yet its job had been enqueued.
	phantoms []string
	note     string
}

// check asserts that every job ended exactly once as expected, that the
// platform saw one batch task per submit job and that nothing is left in
// the queues, and answers the scenario's row for report.
func check(t *testing.T, c *cluster, d *driver, outs []outcome, took time.Duration, note string) result {
	t.Helper()
	st := c.stats(t)
	r := result{scenario: d.scenario, submitted: len(outs), authCalls: st.AuthCalls, duration: took, note: note,
		faults: st.FaultsInjected, replays: st.IdempotentReplays,
		unavailable: d.unavailable.Load(), protocol: d.protocol.Load()}
	for op, n := range st.Calls {
		if op != simulator.OpAuth {
			r.platformCalls += n
		}
	}
	submits, lostSubmits := 0, 0
	tasks := map[string]int{}
	known := map[string]bool{}
	for _, o := range outs {
		known[o.jobID] = true
		if o.attempts > 1 {
			r.retriedJob++
		}
		switch o.state {
		case "completed":
			r.completed++
		case "failed":
			r.failed++
		}
		if o.kind == kindSubmit {
			submits++
			if o.taskID != "" {
				tasks[o.taskID]++
			}
		}
		if o.lost != "" {
			r.lost++
			if o.lost == "job" && o.kind == kindSubmit {
				lostSubmits++
			}
			if d.mayLose == nil || !d.mayLose(o) {
				t.Errorf("job %d (%s %s, sent %s): get_job reported its %s lost; want it to end", o.i, o.kind, o.jobID, o.sent.Format("15:04:05.000"), o.lost)
			}
			continue
		}
		switch {
		case o.problem != "":
			t.Errorf("job %d (%s %s): %s", o.i, o.kind, o.jobID, o.problem)
		case o.kind == kindBadQuery && (o.state != "failed" || o.errCode != 40001):
			t.Errorf("job %d (%s %s) ended %s (code %d %q); want failed with 40001", o.i, o.kind, o.jobID, o.state, o.errCode, o.errMsg)
		case o.kind != kindBadQuery && o.state != "completed":
			t.Errorf("job %d (%s %s) ended %s after %d attempts: %d %s", o.i, o.kind, o.jobID, o.state, o.attempts, o.errCode, o.errMsg)
		case o.kind == kindSubmit && (o.taskID == "" || o.batch != simulator.StateSucceeded):
			t.Errorf("job %d (submit %s): batch task %q %s; want SUCCEEDED", o.i, o.jobID, o.taskID, o.batch)
		}
	}
	delete(known, "")

	// Exactly once in the queues: every job ended once, in the state MCP
	// answered; nothing is left pending, scheduled or retrying; and no
	// other job ran (a batch job's checks, poll-…, are its own).
	ended, unended := c.endedJobs(t), c.unendedJobs(t)
	for _, o := range outs {
		if o.lost != "" || (d.mayLose != nil && d.mayLose(o)) {
			continue // gone, or may be, with Redis's data
		}
		want := map[string]string{"completed": "completed", "failed": "archived"}[o.state]
		if o.jobID != "" && ended[o.jobID] != want {
			t.Errorf("job %s: asynq state %q; MCP answered %s", o.jobID, ended[o.jobID], o.state)
		}
	}
	for id, state := range unended {
		if known[id] {
			t.Errorf("job %s is still %s although MCP answered it ended", id, state)
		}
	}
	phantomSubmits := 0
	for id := range mergeMaps(ended, unended) {
		if !known[id] && !strings.HasPrefix(id, "poll-") && !d.told(id) {
			r.phantoms = append(r.phantoms, id)
			if strings.HasPrefix(id, "submit-") {
				phantomSubmits++
			}
		}
	}
	slices.Sort(r.phantoms)
	if len(r.phantoms) > 0 {
		t.Errorf("%d jobs ran whose ID no MCP answer gave (a call answered a queue-unavailable error telling the caller to try again, yet its job had been enqueued): %v", len(r.phantoms), r.phantoms)
	}

	// Duplicates: batch tasks the platform created beyond one per submit
	// job (a phantom submit job made one too), and task IDs shared by two
	// submit jobs.
	// A submit job reported lost may or may not have created its task.
	r.duplicated = max(0, int(st.BatchSubmissions)-len(tasks)-phantomSubmits-lostSubmits)
	for id, n := range tasks {
		if n > 1 {
			r.duplicated += n - 1
			t.Errorf("batch task %s answered to %d submit jobs", id, n)
		}
	}
	if len(tasks) != submits-lostSubmits || r.duplicated != 0 {
		t.Errorf("platform batch_submissions = %d for %d submit jobs (%d more the caller was told failed, %d reported lost), %d distinct task IDs; want one task per submit job (idempotent replays: %d)",
			st.BatchSubmissions, submits, phantomSubmits, lostSubmits, len(tasks), st.IdempotentReplays)
	}
	if r.protocol != 0 {
		t.Errorf("%d MCP calls failed with a protocol or transport error; want 0", r.protocol)
	}
	for _, p := range append([]*proc{c.sim, c.mcp}, c.workers...) {
		if lines := p.errorLines(); len(lines) > 0 {
			t.Logf("%s logged errors: %v", p.name, lines)
		}
	}
	return r
}

// resultsHeader is the Markdown header of the results table.
const resultsHeader = "| scenario | submitted | completed | failed | duplicated | auth calls | duration | platform calls | faults injected | idempotent replays | jobs retried | queue-unavailable answers | phantom jobs | notes |\n" +
	"| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"

// report logs a scenario's one-line row and appends it, as Markdown, to
// the file MCPJOBS_CHAOS_RESULTS names.
func report(t *testing.T, r result) {
	t.Helper()
	t.Logf("RESULT scenario=%s submitted=%d completed=%d failed=%d duplicated=%d auth_calls=%d duration=%s platform_calls=%d faults=%d replays=%d retried_jobs=%d unavailable_answers=%d protocol_errors=%d phantom_jobs=%d lost=%d %s",
		r.scenario, r.submitted, r.completed, r.failed, r.duplicated, r.authCalls, r.duration.Round(time.Second),
		r.platformCalls, r.faults, r.replays, r.retriedJob, r.unavailable, r.protocol, len(r.phantoms), r.lost, r.note)
	path := os.Getenv("MCPJOBS_CHAOS_RESULTS")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("MCPJOBS_CHAOS_RESULTS: %v", err)
		return
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Size() == 0 {
		_, _ = f.WriteString(resultsHeader)
	}
	status := ""
	if t.Failed() {
		status = "**FAILED** "
	}
	fmt.Fprintf(f, "| %s | %d | %d | %d | %d | %d | %s | %d | %d | %d | %d | %d | %d | %s%s |\n",
		r.scenario, r.submitted, r.completed, r.failed, r.duplicated, r.authCalls, r.duration.Round(time.Second),
		r.platformCalls, r.faults, r.replays, r.retriedJob, r.unavailable, len(r.phantoms), status, r.note)
}

// mergeMaps answers a map with the entries of both.
func mergeMaps(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}
