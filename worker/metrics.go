package worker

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
	"github.com/mcpjobs/mcpjobs/worker/token"
)

// metrics are a worker's Prometheus series, all prefixed mcpjobs_.
type metrics struct {
	callDuration *prometheus.HistogramVec
	finished     *prometheus.CounterVec
	batchEnded   *prometheus.CounterVec
	lockWait     prometheus.Histogram
	parked       prometheus.Gauge
}

// newMetrics creates the worker's series and registers them with reg, when
// reg is not nil.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		callDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpjobs_platform_call_duration_seconds",
			Help:    "Duration of platform calls, by operation and outcome (ok, or the error class).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"operation", "outcome"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpjobs_jobs_finished_total",
			Help: "Job attempts that ended, by task type and outcome (completed, failed, cancelled, retry, handed_back).",
		}, []string{"type", "outcome"}),
		batchEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpjobs_batch_jobs_ended_total",
			Help: "Batch jobs that ended, by final state (completed, failed, cancelled).",
		}, []string{"state"}),
		lockWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mcpjobs_token_lock_wait_seconds",
			Help:    "Time a token refresh waited for another replica's refresh.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15, 30},
		}),
		parked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcpjobs_worker_credentials_refused",
			Help: "1 while this replica takes no jobs because the platform refused its credentials (40101), else 0.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.callDuration, m.finished, m.batchEnded, m.lockWait, m.parked)
	}
	return m
}

// registerTokenMetrics exports the shared token's counters.
func registerTokenMetrics(reg prometheus.Registerer, t *token.Shared) {
	if reg == nil {
		return
	}
	counter := func(name, help string, f func(token.Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(t.Stats()) })
	}
	reg.MustRegister(
		counter("mcpjobs_token_expired_total", "40003 answers (token expired) seen with the shared token.",
			func(s token.Stats) float64 { return float64(s.ExpiredSeen) }),
		counter("mcpjobs_token_refreshes_total", "Tokens this process fetched from the auth endpoint and stored.",
			func(s token.Stats) float64 { return float64(s.Refreshes) }),
		counter("mcpjobs_token_refresh_skipped_total", "Refreshes skipped because another replica had already replaced the token.",
			func(s token.Stats) float64 { return float64(s.RefreshSkipped) }),
		counter("mcpjobs_token_refresh_failures_total", "Failed auth calls (auth endpoint down, 40101 invalid credentials, timeouts).",
			func(s token.Stats) float64 { return float64(s.RefreshFailures) }),
		counter("mcpjobs_token_invalid_credentials_total", "Auth calls of this replica that the platform refused (40101): its own credentials are wrong.",
			func(s token.Stats) float64 { return float64(s.InvalidCredentials) }),
		counter("mcpjobs_token_writes_refused_total", "Token writes refused by the generation check (a holder whose lock ran out).",
			func(s token.Stats) float64 { return float64(s.WritesRefused) }),
		counter("mcpjobs_token_auth_seconds_total", "Time spent in auth calls.",
			func(s token.Stats) float64 { return s.AuthTime.Seconds() }),
	)
}

// observeCall records one platform call.
func (m *metrics) observeCall(op intranet.Operation, took time.Duration, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
		// The job was cancelled or the worker is stopping: not the
		// platform's failure.
		outcome = "cancelled"
	default:
		outcome = "error"
		if c := intranet.ClassOf(err); c != 0 {
			outcome = c.String()
		}
	}
	m.callDuration.WithLabelValues(op.Name, outcome).Observe(took.Seconds())
}

// observeEnd records how a job attempt ended.
func (m *metrics) observeEnd(taskType string, err error, retried, maxRetry int) {
	outcome := "completed"
	switch {
	case err == nil:
	case errors.Is(err, errCancelled):
		outcome = "cancelled"
	case errors.Is(err, errHandedBack):
		outcome = "handed_back"
	case errors.Is(err, asynq.SkipRetry) || (retried >= maxRetry && isFailure(err)):
		outcome = "failed"
	default:
		outcome = "retry"
	}
	m.finished.WithLabelValues(taskType, outcome).Inc()
}

// observeBatchEnd records a batch job that ended.
func (m *metrics) observeBatchEnd(state jobs.State) {
	m.batchEnded.WithLabelValues(string(state)).Inc()
}
