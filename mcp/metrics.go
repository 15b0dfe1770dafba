package mcp

import (
	"context"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/prometheus/client_golang/prometheus"
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
			Help: "MCP tool calls, by tool and outcome (ok, tool_error, error).",
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
		}
		m.calls.WithLabelValues(req.Params.Name, outcome).Inc()
		m.duration.WithLabelValues(req.Params.Name).Observe(time.Since(start).Seconds())
		return res, err
	}
}
