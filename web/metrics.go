package web

import (
	"context"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynq/x/metrics"
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

// queueCollector exports asynq's queue metrics (asynq/x/metrics: tasks
// per queue and state, queue size, latency, memory, processed and failed
// totals, paused) after checking, within a deadline, that Redis answers.
type queueCollector struct {
	rdb     redis.UniversalClient
	queues  prometheus.Collector
	timeout time.Duration
	log     *slog.Logger
}

func newQueueCollector(rdb redis.UniversalClient, timeout time.Duration, log *slog.Logger) *queueCollector {
	return &queueCollector{
		rdb:     rdb,
		queues:  metrics.NewQueueMetricsCollector(asynq.NewInspectorFromRedisClient(rdb)),
		timeout: timeout,
		log:     log,
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
	c.queues.Collect(ch)
}
