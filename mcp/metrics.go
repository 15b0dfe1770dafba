package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpjobs/mcpjobs/jobs"
)

// toolMetrics count and time tool calls (mcpjobs_tool_…).
type toolMetrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newToolMetrics(reg prometheus.Registerer) *toolMetrics {
	m := &toolMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpjobs_tool_calls_total",
			Help: "MCP tool calls, by tool and outcome (ok, job_failed, job_cancelled, tool_error, error).",
		}, []string{"tool", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpjobs_tool_call_duration_seconds",
			Help:    "Duration of MCP tool calls, waiting for the job included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"tool"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.duration)
	}
	return m
}

// middleware records every tool call.
func (m *toolMetrics) middleware(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
	return func(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		start := time.Now()
		res, err := next(ctx, req)
		outcome := "ok"
		switch {
		case err != nil:
			outcome = "error"
		case res != nil && res.IsError:
			outcome = "tool_error"
		case res != nil:
			outcome = viewOutcome(res.StructuredContent)
		}
		m.calls.WithLabelValues(req.Params.Name, outcome).Inc()
		m.duration.WithLabelValues(req.Params.Name).Observe(time.Since(start).Seconds())
		return res, err
	}
}

// viewOutcome is the outcome of a call answered with a job view: job_failed
// or job_cancelled when the job ended so, else ok. It reads the view's
// top-level fields only up to "state" (the third), not the result.
func viewOutcome(content any) string {
	raw, ok := content.(json.RawMessage)
	if !ok {
		return "ok"
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "ok"
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return "ok"
		}
		if key != "state" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return "ok"
			}
			continue
		}
		var state jobs.State
		if dec.Decode(&state) != nil {
			return "ok"
		}
		switch state {
		case jobs.StateFailed:
			return "job_failed"
		case jobs.StateCancelled:
			return "job_cancelled"
		}
		return "ok"
	}
	return "ok"
}
