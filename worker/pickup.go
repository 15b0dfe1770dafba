package worker

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/invalidation"
)

// Long polling for asynq.
//
// asynq's processor fetches a job with its dequeue script, one queue after
// another, and when every queue is empty it sleeps half to one and a half
// times its TaskCheckInterval, uninterruptibly. A job that arrives at an
// idle worker waits out that sleep: 50 ms on average with the old 100 ms
// interval, for every idle replica's 10 rounds × 3 queues of scripts a
// second.
//
// Instead the worker hands asynq a Redis client (dequeueClient) that
// intercepts the dequeue script, and learns from Redis itself when a queue
// may have work: a connection of its own subscribes to Redis's
// client-side-caching invalidations (CLIENT TRACKING … BCAST PREFIX) for
// every queue's pending list and paused flag. Whatever pushes a task into a
// pending list (an enqueue, the forwarder moving a scheduled or retrying
// task, a requeue, the dashboard) makes Redis send the list's name, at no
// cost to the enqueuing side. A queue nobody touched since it was last
// found empty answers "empty" without a round trip; when none may have
// work, the dequeue call waits for an invalidation, at most
// IdleCheckInterval (when every queue is looked at anyway), or until the
// worker shuts down. asynq's own sleep is then set to a millisecond.
//
// A queue that may have work is first asked its length (LLEN, one command,
// where the dequeue script costs three): the other replicas woken by the
// same invalidation, or by the invalidation of a job's own dequeue, pay one
// command each. A length of n lets the next n dequeues go straight to the
// script.
//
// Correctness: a queue is marked clean before the command that finds it
// empty is sent, and an invalidation for any later push arrives after that
// push, so it marks the queue again; nothing is missed while the
// subscription holds. When it does not (not connected, reconnecting, a
// Redis without CLIENT TRACKING, a client that is not a *redis.Client),
// every queue is looked at every QueueCheckInterval, as asynq would.

// queueOf returns the queue of an asynq key "asynq:{<queue>}:<suffix>".
func queueOf(key, suffix string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "asynq:{")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "}:"+suffix)
}

// dequeueQueue returns the queue that an asynq dequeue script call is for:
// its keys are the queue's pending, paused, active and lease keys.
func dequeueQueue(keys []string) (string, bool) {
	if len(keys) != 4 {
		return "", false
	}
	q, ok := queueOf(keys[0], "pending")
	if !ok {
		return "", false
	}
	for i, suffix := range []string{"paused", "active", "lease"} {
		if k, ok := queueOf(keys[i+1], suffix); !ok || k != q {
			return "", false
		}
	}
	return q, true
}

// dequeueClient is the Redis client asynq's server runs on: the worker's,
// with the dequeue script's calls going through a pickup.
type dequeueClient struct {
	redis.UniversalClient
	p *pickup
}

// EvalSha runs a script by its hash; a dequeue goes through the pickup.
// (go-redis sends a script with Eval only after EvalSha answered NOSCRIPT,
// so the pickup has already let that dequeue pass.)
func (c dequeueClient) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	if q, ok := dequeueQueue(keys); ok {
		return c.p.dequeue(ctx, q, func() *redis.Cmd { return c.UniversalClient.EvalSha(ctx, sha1, keys, args...) })
	}
	return c.UniversalClient.EvalSha(ctx, sha1, keys, args...)
}

// queueState is what a pickup knows of one queue.
type queueState struct {
	// dirty: Redis said its pending list or paused flag changed since it
	// was last found empty, or a full look is due.
	dirty bool
	// more is how many more tasks its last LLEN counted: dequeues go
	// straight to the script while it lasts.
	more int64
}

// pickup decides when asynq's dequeue script runs (see the comment at the
// top of this file).
type pickup struct {
	rdb      redis.UniversalClient
	log      *slog.Logger
	idle     time.Duration // IdleCheckInterval
	fallback time.Duration // QueueCheckInterval
	queues   []string
	inv      *invalidation.Listener // nil until start

	mu        sync.Mutex
	state     map[string]*queueState
	seen      map[string]bool // the queues of asynq's current round
	nextSweep time.Time
	wake      chan struct{} // one signal: a queue became dirty
	stop      chan struct{} // closed while the server shuts down

	// blocks counts the waits for work, waiting is 1 during one, pauses
	// the pauses after a failed dequeue (tests).
	blocks  atomic.Int64
	waiting atomic.Int32
	pauses  atomic.Int64
}

func newPickup(rdb redis.UniversalClient, queues []string, idle, fallback time.Duration, log *slog.Logger) *pickup {
	p := &pickup{rdb: rdb, log: log, idle: idle, fallback: fallback, queues: queues,
		state: map[string]*queueState{}, seen: map[string]bool{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	for _, q := range queues {
		p.state[q] = &queueState{dirty: true}
	}
	return p
}

// start subscribes to the invalidations; close stops.
func (p *pickup) start() { p.inv = p.listen() }

func (p *pickup) close() {
	p.interrupt()
	if p.inv != nil {
		p.inv.Close()
	}
}

// listening reports whether invalidations flow.
func (p *pickup) listening() bool { return p.inv != nil && p.inv.Listening() }

// interrupt makes every dequeue answer at once, without waiting: asynq's
// shutdown waits for the dequeue in progress. resume undoes it.
func (p *pickup) interrupt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
}

func (p *pickup) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stop:
		p.stop = make(chan struct{})
	default:
	}
}

// markAll marks every queue dirty and wakes a waiting dequeue.
func (p *pickup) markAll() {
	p.mu.Lock()
	for _, st := range p.state {
		st.dirty = true
	}
	p.mu.Unlock()
	p.signal()
}

// mark marks the queue of an invalidated key dirty.
func (p *pickup) mark(key string) {
	q, ok := queueOf(key, "pending")
	if !ok {
		q, ok = queueOf(key, "paused")
	}
	if !ok {
		return
	}
	p.mu.Lock()
	st := p.state[q]
	if st != nil {
		st.dirty = true
	}
	p.mu.Unlock()
	if st != nil {
		p.signal()
	}
}

func (p *pickup) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// sweepEvery is how often every queue is looked at regardless.
func (p *pickup) sweepEvery() time.Duration {
	d := p.fallback
	if p.listening() {
		d = p.idle
	}
	// ×0.75–1.25, so that replicas do not look in step.
	return d*3/4 + rand.N(d/2+1)
}

// nilCmd is the answer of a queue with nothing to take.
func nilCmd(ctx context.Context) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(redis.Nil)
	return cmd
}

// dequeue runs the dequeue script of queue q (run) when q may have a task,
// answers "empty" when it has none, and, at the start of a round of
// asynq's (its first queue), waits while no queue may have one: waiting in
// the middle of a round would end it empty when the wake-up is for a
// queue already passed, and asynq would sleep before the next.
func (p *pickup) dequeue(ctx context.Context, q string, run func() *redis.Cmd) *redis.Cmd {
	p.mu.Lock()
	st := p.state[q]
	if st == nil { // a queue we were not told of: asynq's own way
		p.mu.Unlock()
		return run()
	}
	if p.seen[q] {
		clear(p.seen)
	}
	first := len(p.seen) == 0
	p.seen[q] = true
	p.mu.Unlock()
	cmd := p.take(ctx, q, st, first, run)
	p.mu.Lock()
	if !errors.Is(cmd.Err(), redis.Nil) || len(p.seen) == len(p.state) {
		clear(p.seen) // asynq starts a new round
	}
	p.mu.Unlock()
	return cmd
}

func (p *pickup) take(ctx context.Context, q string, st *queueState, first bool, run func() *redis.Cmd) *redis.Cmd {
	for {
		p.mu.Lock()
		now := time.Now()
		if !now.Before(p.nextSweep) {
			for _, s := range p.state {
				s.dirty = true
			}
			p.nextSweep = now.Add(p.sweepEvery())
		}
		stop := p.stop
		stopping := false
		select {
		case <-stop:
			stopping = true
		default:
		}
		switch {
		case st.more > 0:
			st.more--
			p.mu.Unlock()
			cmd := run()
			p.after(q, cmd, stop)
			return cmd
		case st.dirty:
			st.dirty = false
			p.mu.Unlock()
			return p.check(ctx, q, run, stop)
		case stopping || !first || p.anyWork():
			p.mu.Unlock()
			return nilCmd(ctx)
		}
		wait := p.nextSweep.Sub(now)
		p.mu.Unlock()
		p.blocks.Add(1)
		p.waiting.Store(1)
		t := time.NewTimer(wait)
		select {
		case <-p.wake:
		case <-t.C:
		case <-stop:
		}
		t.Stop()
		p.waiting.Store(0)
	}
}

// anyWork says whether some queue may have a task; p.mu is held.
func (p *pickup) anyWork() bool {
	for _, s := range p.state {
		if s.dirty || s.more > 0 {
			return true
		}
	}
	return false
}

// check asks the length of q's pending list, then runs the script if it
// holds anything.
func (p *pickup) check(ctx context.Context, q string, run func() *redis.Cmd, stop chan struct{}) *redis.Cmd {
	n, err := p.rdb.LLen(ctx, "asynq:{"+q+"}:pending").Result()
	if err != nil {
		p.failed(q, stop)
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	if n == 0 {
		return nilCmd(ctx)
	}
	p.mu.Lock()
	p.state[q].more = n - 1
	p.mu.Unlock()
	cmd := run()
	p.after(q, cmd, stop)
	return cmd
}

// after notes what the script answered: nothing (the queue is empty or
// paused), or an error.
func (p *pickup) after(q string, cmd *redis.Cmd, stop chan struct{}) {
	switch err := cmd.Err(); {
	case err == nil:
	case errors.Is(err, redis.Nil):
		p.mu.Lock()
		p.state[q].more = 0
		p.mu.Unlock()
	case strings.HasPrefix(err.Error(), "NOSCRIPT"):
		// Redis does not know the script yet (a new or restarted Redis):
		// go-redis sends it with EVAL at once; look at q again next time.
		p.mu.Lock()
		p.state[q].dirty = true
		p.mu.Unlock()
	default:
		p.failed(q, stop)
	}
}

// failed marks q to be looked at again after QueueCheckInterval: asynq
// retries a failed dequeue at once, which would spin against a Redis that
// is down.
func (p *pickup) failed(q string, stop chan struct{}) {
	p.pauses.Add(1)
	p.mu.Lock()
	p.state[q].dirty, p.state[q].more = true, 0
	p.mu.Unlock()
	t := time.NewTimer(p.fallback)
	defer t.Stop()
	select {
	case <-t.C:
	case <-stop:
	}
}

// trackingPrefixes are the keys whose changes wake the pickup.
func (p *pickup) trackingPrefixes() []string {
	var prefixes []string
	for _, q := range p.queues {
		prefixes = append(prefixes, "asynq:{"+q+"}:pending", "asynq:{"+q+"}:paused")
	}
	return prefixes
}

// listen listens to the invalidations of the queues' keys until close.
// Without them (a client that is not a *redis.Client, a Redis that refuses
// CLIENT TRACKING, a lost connection), the pickup polls.
func (p *pickup) listen() *invalidation.Listener {
	return invalidation.Listen(p.rdb, p.trackingPrefixes(), invalidation.Handler{
		Keys: func(keys []string) {
			for _, k := range keys {
				p.mark(k)
			}
		},
		All: p.markAll,
		Lost: func(err error) {
			p.log.Warn("worker: lost Redis's invalidations; idle workers poll until they are back", slog.Any("error", err))
			p.mu.Lock()
			p.nextSweep = time.Now() // and every QueueCheckInterval from now on
			p.mu.Unlock()
			p.markAll()
		},
		Refused: func(err error) {
			if errors.Is(err, invalidation.ErrUnsupportedClient) {
				p.log.Info("worker: idle workers poll every QueueCheckInterval (Redis invalidations need a single-node or Sentinel Redis)")
				return
			}
			p.log.Warn("worker: Redis refused CLIENT TRACKING (it needs Redis 6 or later); idle workers poll every QueueCheckInterval", slog.String("error", err.Error()))
		},
	})
}
