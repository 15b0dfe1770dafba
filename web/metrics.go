package web

import (
	"context"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// redisUpDesc tells whether the last scrape found Redis answering; without
// it, a Redis outage would only show as missing asynq_ series.
var redisUpDesc = prometheus.NewDesc(
	"mcpjobs_web_redis_up",
	"1 when Redis answered this scrape's PING (then the asynq_ queue series follow), 0 otherwise.",
	nil, nil,
)

// The asynq_ queue series, named as asynq's x/metrics collector names them
// (asynqmon's metrics view queries these names).
var (
	tasksDesc = prometheus.NewDesc("asynq_tasks_enqueued_total",
		"Number of tasks in a queue, by state (a gauge, despite its name).", []string{"queue", "state"}, nil)
	queueSizeDesc = prometheus.NewDesc("asynq_queue_size",
		"Number of tasks in a queue, all states.", []string{"queue"}, nil)
	queueLatencyDesc = prometheus.NewDesc("asynq_queue_latency_seconds",
		"How long the oldest pending task of a queue has waited.", []string{"queue"}, nil)
	queueMemoryDesc = prometheus.NewDesc("asynq_queue_memory_usage_approx_bytes",
		"Redis memory used by a queue (approximated by sampling).", []string{"queue"}, nil)
	processedDesc = prometheus.NewDesc("asynq_tasks_processed_total",
		"Tasks processed by a queue's workers, succeeded or failed.", []string{"queue"}, nil)
	failedDesc = prometheus.NewDesc("asynq_tasks_failed_total",
		"Tasks whose processing failed.", []string{"queue"}, nil)
	pausedDesc = prometheus.NewDesc("asynq_queue_paused_total",
		"1 while a queue is paused, else 0.", []string{"queue"}, nil)
)

// queueCollector exports asynq's queue metrics (tasks per queue and state,
// queue size, latency, memory, processed and failed totals, paused), read
// with asynq's Inspector at each scrape, after checking within a deadline
// that Redis answers.
type queueCollector struct {
	rdb       redis.UniversalClient
	inspector *asynq.Inspector
	timeout   time.Duration
	log       *slog.Logger
}

func newQueueCollector(rdb redis.UniversalClient, timeout time.Duration, log *slog.Logger) *queueCollector {
	return &queueCollector{
		rdb:       rdb,
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		timeout:   timeout,
		log:       log,
	}
}

// Describe describes nothing: the queues, hence the series, are known only
// when collecting, so this is an unchecked collector.
func (c *queueCollector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		c.log.Warn("metrics: redis does not answer; no queue metrics in this scrape", slog.Any("error", err))
		ch <- prometheus.MustNewConstMetric(redisUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(redisUpDesc, prometheus.GaugeValue, 1)
	queues, err := c.inspector.Queues()
	if err != nil {
		c.log.Warn("metrics: list queues", slog.Any("error", err))
		return
	}
	for _, q := range queues {
		info, err := c.inspector.GetQueueInfo(q)
		if err != nil {
			c.log.Warn("metrics: read queue", slog.String("queue", q), slog.Any("error", err))
			continue
		}
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{q}, labels...)...)
		}
		for state, n := range map[string]int{"active": info.Active, "pending": info.Pending, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed, "aggregating": info.Aggregating} {
			gauge(tasksDesc, float64(n), state)
		}
		gauge(queueSizeDesc, float64(info.Size))
		gauge(queueLatencyDesc, info.Latency.Seconds())
		gauge(queueMemoryDesc, float64(info.MemoryUsage))
		paused := 0.0
		if info.Paused {
			paused = 1
		}
		gauge(pausedDesc, paused)
		ch <- prometheus.MustNewConstMetric(processedDesc, prometheus.CounterValue, float64(info.ProcessedTotal), q)
		ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.CounterValue, float64(info.FailedTotal), q)
	}
}
