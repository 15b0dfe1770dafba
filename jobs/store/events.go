package store

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// EndedChannel is the Redis pub/sub channel on which workers announce every
// attempt that ends; the message is the job ID.
const EndedChannel = "mcpjobs:jobs:ended"

// Announce tells waiting callers that an attempt of job id has ended. It is
// best effort: waiters also re-read job states, so a lost message costs
// latency, never a wrong answer.
func Announce(ctx context.Context, rdb redis.UniversalClient, id string) error {
	return rdb.Publish(ctx, EndedChannel, id).Err()
}

// RecordEnd writes the result (or final failure) of an attempt that ended
// into the job's asynq task, where asynq's ResultWriter writes it, and
// announces the end, in one round trip. Unlike ResultWriter it writes
// within ctx even after the run's own context ended (a cancelled run).
func RecordEnd(ctx context.Context, rdb redis.UniversalClient, queue, id string, result []byte) error {
	pipe := rdb.Pipeline()
	pipe.HSet(ctx, taskKey(queue, id), "result", result)
	pipe.Publish(ctx, EndedChannel, id)
	_, err := pipe.Exec(ctx)
	return err
}

// hub keeps one subscription to EndedChannel per process and hands each
// message to the callers waiting for that job.
type hub struct {
	rdb    redis.UniversalClient
	logger *slog.Logger

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
	pubsub  *redis.PubSub
	ready   chan struct{} // closed once the subscription is confirmed
	done    chan struct{}
}

func newHub(rdb redis.UniversalClient, logger *slog.Logger) *hub {
	return &hub{rdb: rdb, logger: logger, waiters: map[string]map[chan struct{}]struct{}{}, done: make(chan struct{})}
}

// start subscribes on first use. The subscription reconnects on its own
// (go-redis PubSub); while it is down, waiters fall back to re-reading.
func (h *hub) start() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pubsub != nil {
		return
	}
	h.pubsub = h.rdb.Subscribe(context.Background(), EndedChannel)
	h.ready = make(chan struct{})
	go h.run(h.pubsub, h.ready)
}

func (h *hub) run(ps *redis.PubSub, ready chan struct{}) {
	// Confirm the subscription so that a waiter registered after start
	// does not miss a message published right after its first read.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if _, err := ps.Receive(ctx); err != nil {
		h.logger.Warn("jobs: subscribe to job announcements failed; falling back to re-reads", slog.Any("error", err))
	}
	cancel()
	close(ready)
	for msg := range ps.Channel(redis.WithChannelHealthCheckInterval(10 * time.Second)) {
		h.notify(msg.Payload)
	}
}

// waitReady waits until the subscription is confirmed, at most d.
func (h *hub) waitReady(d time.Duration) {
	h.mu.Lock()
	ready := h.ready
	h.mu.Unlock()
	select {
	case <-ready:
	case <-time.After(d):
	}
}

func (h *hub) notify(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.waiters[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// register returns a channel that receives a value when job id is announced,
// and a function to unregister it.
func (h *hub) register(id string) (<-chan struct{}, func()) {
	h.start()
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.waiters[id] == nil {
		h.waiters[id] = map[chan struct{}]struct{}{}
	}
	h.waiters[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.waiters[id], ch)
		if len(h.waiters[id]) == 0 {
			delete(h.waiters, id)
		}
		h.mu.Unlock()
	}
}

func (h *hub) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pubsub == nil {
		return nil
	}
	err := h.pubsub.Close()
	h.pubsub = nil
	return err
}
