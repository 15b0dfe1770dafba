package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// The job every scenario but memory runs: a short code-to-DAG compilation,
// the cheapest platform operation.
var (
	dagPayload = jobs.DAGPayload{Code: "var dem = Image('dem_30m'); var a = dem.aspect(); Export(a, 'out')", Language: "javascript"}
	dagArgs    = map[string]any{"code": dagPayload.Code, "language": dagPayload.Language}
)

// owner is the identity the scenarios enqueue as (MCP's unauthenticated
// HTTP caller).
const owner = "local"

// serve serves h on a loopback port; stop closes it.
func serve(h http.Handler) (url string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() { _ = srv.Close() }, nil
}

// platform is the simulator with no latency behind a loopback server, and
// a platform client for it. It records when it last finished answering a
// code-to-DAG call.
type platform struct {
	sim    *simulator.Simulator
	client *intranet.Client
	stop   func()

	base     time.Time // with its monotonic clock reading
	dagCalls atomic.Int64
	dagDone  atomic.Int64 // since base

	aspectCalls atomic.Int64
	aspectTook  atomic.Int64 // the last aspect call's time in the handler
}

func newPlatform() (*platform, error) {
	sim, err := simulator.New(simulator.Config{})
	if err != nil {
		return nil, err
	}
	p := &platform{sim: sim, base: time.Now()}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sim.ServeHTTP(w, r)
		if r.URL.Path == "/api/coverage/aspect" {
			p.aspectTook.Store(int64(time.Since(start)))
			p.aspectCalls.Add(1)
		}
		if r.URL.Path == "/api/dag/compile" {
			p.dagDone.Store(int64(time.Since(p.base)))
			p.dagCalls.Add(1)
		}
	})
	url, stop, err := serve(h)
	if err != nil {
		return nil, err
	}
	p.stop = stop
	p.client, err = intranet.New(intranet.Config{BaseURL: url, Username: simulator.DefaultUsername, Password: simulator.DefaultPassword})
	if err != nil {
		stop()
		return nil, err
	}
	return p, nil
}

// lastDAG returns the number of code-to-DAG calls answered and when the
// last one was.
func (p *platform) lastDAG() (int64, time.Time) {
	return p.dagCalls.Load(), p.base.Add(time.Duration(p.dagDone.Load()))
}

// lastAspect returns the number of aspect calls answered and how long the
// simulator took over the last one.
func (p *platform) lastAspect() (int64, time.Duration) {
	return p.aspectCalls.Load(), time.Duration(p.aspectTook.Load())
}

// dialMCP connects an MCP client over streamable HTTP, with its own
// connection pool, as a separate MCP client would have.
func dialMCP(ctx context.Context, url string) (*mcpclient.Client, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	c, err := mcpclient.NewStreamableHttpClient(url, transport.WithHTTPBasicClient(hc))
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	if _, err := c.Initialize(ctx, mcpgo.InitializeRequest{Params: mcpgo.InitializeParams{
		ProtocolVersion: mcpgo.LATEST_PROTOCOL_VERSION,
		ClientInfo:      mcpgo.Implementation{Name: "mcpjobs-bench", Version: "1"},
	}}); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// toolView is the part of a job view the scenarios read.
type toolView struct {
	JobID string     `json:"job_id"`
	State jobs.State `json:"state"`
}

// callTool calls a tool that answers a job view.
func callTool(ctx context.Context, c *mcpclient.Client, name string, args map[string]any) (toolView, error) {
	res, err := c.CallTool(ctx, mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: name, Arguments: args}})
	if err != nil {
		return toolView{}, err
	}
	var b strings.Builder
	for _, ct := range res.Content {
		if tc, ok := ct.(mcpgo.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	if res.IsError {
		return toolView{}, fmt.Errorf("%s: tool error: %s", name, b.String())
	}
	var v toolView
	if err := json.Unmarshal([]byte(b.String()), &v); err != nil {
		return toolView{}, fmt.Errorf("%s: %v in %q", name, err, b.String())
	}
	return v, nil
}

// withArgs returns base plus extra.
func withArgs(base map[string]any, extra map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(extra))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// bareOptions are the asynq options store.Client gives a job of taskType,
// without its task ID: what a bare asynq caller would pass.
func bareOptions(taskType string) []asynq.Option {
	spec, _ := jobs.SpecFor(taskType)
	return []asynq.Option{asynq.Queue(spec.Queue), asynq.MaxRetry(spec.MaxRetry), asynq.Timeout(spec.Timeout), asynq.Retention(24 * time.Hour)}
}

// fill enqueues n jobs with 8 concurrent callers.
func fill(ctx context.Context, n int, enqueue func(context.Context) error) error {
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		errAll error
	)
	for range 8 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := enqueue(ctx); err != nil {
					mu.Lock()
					errAll = errors.Join(errAll, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return errAll
}

// rate is the figures of a closed-loop load: calls, errors, calls per
// second and latency.
type rate struct {
	Calls      int64       `json:"calls"`
	Errors     int64       `json:"errors"`
	FirstError string      `json:"first_error,omitempty"`
	PerSecond  float64     `json:"calls_per_s"`
	Latency    Percentiles `json:"latency"`
}

// load is what hammer measured, possibly over several rounds.
type load struct {
	latencies []time.Duration
	errors    int64
	firstErr  string
	elapsed   time.Duration
}

func (l *load) add(o load) {
	l.latencies = append(l.latencies, o.latencies...)
	l.errors += o.errors
	if l.firstErr == "" {
		l.firstErr = o.firstErr
	}
	l.elapsed += o.elapsed
}

func (l load) rate() rate {
	r := rate{Calls: int64(len(l.latencies)), Errors: l.errors, FirstError: l.firstErr, Latency: percentiles(l.latencies)}
	if l.elapsed > 0 {
		r.PerSecond = round3(float64(r.Calls) / l.elapsed.Seconds())
	}
	return r
}

// hammer runs callers goroutines that each call call back to back for d,
// and measures them.
func hammer(ctx context.Context, callers int, d time.Duration, call func(ctx context.Context, caller int) error) load {
	var (
		mu sync.Mutex
		l  load
		wg sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for i := range callers {
		wg.Go(func() {
			var mine []time.Duration
			var errs int64
			var first string
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t := time.Now()
				err := call(ctx, i)
				mine = append(mine, time.Since(t))
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
				}
			}
			mu.Lock()
			l.add(load{latencies: mine, errors: errs, firstErr: first})
			mu.Unlock()
		})
	}
	wg.Wait()
	l.elapsed = time.Since(start)
	return l
}

// nopLogger silences asynq's own logger.
type nopLogger struct{}

func (nopLogger) Debug(...any) {}
func (nopLogger) Info(...any)  {}
func (nopLogger) Warn(...any)  {}
func (nopLogger) Error(...any) {}
func (nopLogger) Fatal(...any) {}

// discard is the logger of the components under test: logging a line per
// job would measure the logger.
var discard = slog.New(slog.DiscardHandler)
