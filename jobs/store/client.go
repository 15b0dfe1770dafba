package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/jobs"
)

// Options configure a Client. The zero value is usable.
type Options struct {
	// Retention is how long a finished job stays readable. Default: 24h.
	Retention time.Duration
	// RecheckInterval is how often a waiting caller re-reads the job's
	// state in case an announcement was lost. Default: 1s.
	RecheckInterval time.Duration
	// RedisTimeout bounds the Redis work of one enqueue. Default: 5s.
	RedisTimeout time.Duration
	// Logger receives the client's logs. Default: discard.
	Logger *slog.Logger
	// WaitReplicas is how many Redis replicas must acknowledge a new job
	// (Redis WAIT) before Enqueue answers its ID; when fewer do within
	// WaitTimeout, Enqueue answers an *UncertainError that names the job,
	// which is queued on the primary but may not survive a failover.
	// Default: 0 (no wait).
	WaitReplicas int
	// WaitTimeout bounds the wait for WaitReplicas. Default: 1s.
	WaitTimeout time.Duration
	// Deadline, when set, shortens every job's deadline (Spec.Deadline)
	// to at most this. Default: each type's own.
	Deadline time.Duration
	// ServiceTokenStatus lets query_task_status ask the platform, with the
	// service token, about a task that no batch job of mcpjobs submitted
	// (a confused deputy unless every identity may see every task).
	// Default: false: such a query needs the caller's auth_token.
	ServiceTokenStatus bool
}

func (o Options) withDefaults() Options {
	if o.Retention <= 0 {
		o.Retention = 24 * time.Hour
	}
	if o.RecheckInterval <= 0 {
		o.RecheckInterval = time.Second
	}
	if o.RedisTimeout <= 0 {
		o.RedisTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = time.Second
	}
	return o
}

// Client enqueues jobs and reads, waits for and lists them. It is safe for
// concurrent use.
type Client struct {
	rdb       redis.UniversalClient
	opts      Options
	enqueuer  *asynq.Client
	inspector *asynq.Inspector
	hub       *hub

	// indexed counts enqueues, so that only one in trimEvery trims the
	// owner's index; asserted holds, per queue, when this client last
	// re-added it to asynq's queue set (unix nanoseconds).
	indexed  atomic.Uint64
	asserted sync.Map
}

// NewClient returns a Client on a Redis connection, which it does not close.
func NewClient(rdb redis.UniversalClient, opts Options) *Client {
	opts = opts.withDefaults()
	return &Client{
		rdb:       rdb,
		opts:      opts,
		enqueuer:  asynq.NewClientFromRedisClient(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		hub:       newHub(rdb, opts.Logger),
	}
}

// Close stops the client's subscription.
func (c *Client) Close() error { return c.hub.close() }

// EnqueueOption is a per-call enqueue setting.
type EnqueueOption func(*enqueueOptions)

type enqueueOptions struct {
	credential     string
	idempotencyKey string
	// credentialOf names another job whose caller token this job uses
	// (a status query of a batch job's task); it is not this job's to drop.
	credentialOf string
}

// WithCredential makes the job use the caller's own platform token instead
// of the shared one. The token is stored apart from the payload, only once
// the job is known to be new, until the job ends or its deadline passes.
func WithCredential(token string) EnqueueOption {
	return func(o *enqueueOptions) { o.credential = token }
}

// WithIdempotencyKey makes the job's ID a function of the owner and key:
// enqueueing again with the same key answers the same job (while it is
// retained) instead of a new one.
func WithIdempotencyKey(key string) EnqueueOption {
	return func(o *enqueueOptions) { o.idempotencyKey = key }
}

// Enqueue validates p and enqueues it as a job owned by owner. A payload
// that fails validation returns an error that wraps ErrInvalid, and nothing
// is enqueued.
func (c *Client) Enqueue(ctx context.Context, owner string, p jobs.Payload, opts ...EnqueueOption) (*jobs.View, error) {
	if owner == "" {
		return nil, fmt.Errorf("jobs: enqueue without an owner")
	}
	var eo enqueueOptions
	for _, o := range opts {
		o(&eo)
	}
	if len(eo.idempotencyKey) > jobs.MaxIdempotencyKey {
		return nil, jobs.FieldErrorf("idempotency_key", "is %d characters; the limit is %d", len(eo.idempotencyKey), jobs.MaxIdempotencyKey)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	spec, ok := jobs.SpecFor(p.TaskType())
	if !ok {
		return nil, fmt.Errorf("jobs: unknown task type %q", p.TaskType())
	}
	id := jobs.NewJobID(spec)
	if eo.idempotencyKey != "" {
		sum := sha256.Sum256([]byte(owner + "\x00" + eo.idempotencyKey))
		id = spec.Kind + "-" + hex.EncodeToString(sum[:16])
		// The same key: answer the job it made, and store nothing (a
		// different auth_token must not replace the job's).
		if v, err := c.Get(ctx, owner, id); err == nil {
			return v, nil
		} else if !errors.Is(err, jobs.ErrNotFound) {
			return nil, err
		}
	}
	v, created, err := c.enqueue(ctx, owner, spec, id, p, eo)
	if err != nil {
		return nil, err
	}
	if !created {
		// The same idempotency key, enqueued meanwhile.
		v, err := c.Get(ctx, owner, id)
		if err != nil {
			return nil, &jobs.UncertainError{JobID: id, Err: err}
		}
		return v, nil
	}
	return v, nil
}

// enqueue enqueues p as job id. created is false when a job with that ID
// already exists; then v is nil.
//
// The owner's index is written first, in a round trip of its own, so that
// a job whose enqueue outcome is unknown (Redis stalled after receiving it)
// can still be found with list_jobs; index entries of jobs that never came
// to be are dropped when listed. Its answer is also what makes an outage
// answer "not queued" rather than "may still run": an enqueue sent in the
// same round trip as the index (one round trip, not two) would leave every
// enqueue that meets a Redis that is down or stalled of unknown outcome. A caller's token is written with SET NX, so that it never
// replaces the token of a job that has this ID already, and deleted when
// the enqueue is refused, conflicts or its outcome is unknown.
func (c *Client) enqueue(ctx context.Context, owner string, spec jobs.Spec, id string, p any, eo enqueueOptions) (v *jobs.View, created bool, err error) {
	body, err := json.Marshal(p)
	if err != nil {
		return nil, false, fmt.Errorf("jobs: encode %s payload: %w", spec.Type, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.RedisTimeout)
	defer cancel()
	now := time.Now().UTC()
	headers := map[string]string{jobs.HeaderOwner: owner, jobs.HeaderCreatedAt: now.Format(time.RFC3339Nano)}
	if c.opts.Deadline > 0 && (spec.Deadline <= 0 || c.opts.Deadline < spec.Deadline) {
		spec.Deadline = c.opts.Deadline
	}
	if spec.Deadline > 0 {
		headers[jobs.HeaderDeadline] = now.Add(spec.Deadline).Format(time.RFC3339Nano)
	}
	credential := eo.credential
	switch {
	case credential != "":
		headers[HasCredential] = "1"
		stored, err := saveCredential(ctx, c.rdb, id, credential, spec.Deadline)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
		}
		if !stored {
			return nil, false, nil // a job with this ID has its own token
		}
	case eo.credentialOf != "":
		headers[HasCredential] = eo.credentialOf
	}
	dropCredential := func(ctx context.Context) {
		if credential != "" {
			_ = DropCredential(ctx, c.rdb, id)
		}
	}
	if spec.Type != jobs.TypeBatchStatus { // status queries are not listed
		if err := c.index(ctx, owner, id, now); err != nil {
			dropCredential(context.WithoutCancel(ctx))
			return nil, false, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
		}
	}
	task := asynq.NewTaskWithHeaders(spec.Type, body, headers)
	_, err = c.enqueuer.EnqueueContext(ctx, task, spec.Options(id, c.opts.Retention)...)
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		dropCredential(ctx)
		return nil, false, nil
	case err != nil:
		// asynq does not say whether Redis received the task: look.
		lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.RedisTimeout)
		defer lcancel()
		lerr := c.lookup(lctx, spec.Queue, id)
		switch {
		case lerr == nil:
			// It is queued after all.
		case jobs.IsNotFound(lerr):
			dropCredential(lctx)
			return nil, false, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
		default:
			// Unknown: should the job exist, it fails for want of the
			// token rather than keep a secret nobody may ever clean up.
			dropCredential(lctx)
			return nil, false, &jobs.UncertainError{JobID: id, Err: err}
		}
	}
	if err := c.waitReplicas(ctx, id); err != nil {
		return nil, false, err
	}
	c.opts.Logger.DebugContext(ctx, "job enqueued", slog.String("job_id", id), slog.String("type", spec.Type), slog.String("owner", owner))
	return &jobs.View{JobID: id, Type: spec.Type, State: jobs.StatePending, CreatedAt: &now, Owner: owner}, true, nil
}

// replicationProbeKey is a counter that waitReplicas increments so that
// its connection has a write to wait for: Redis WAIT waits for the writes
// of its own connection, and the enqueue ran on another one of the pool.
// Replication is one ordered stream, so a write made after the enqueue
// answered reaches a replica after it.
const replicationProbeKey = "mcpjobs:replication-probe"

// waitReplicas waits, when Options.WaitReplicas asks for it, until that
// many replicas have the job id; fewer answer an *UncertainError.
func (c *Client) waitReplicas(ctx context.Context, id string) error {
	if c.opts.WaitReplicas <= 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.WaitTimeout+c.opts.RedisTimeout)
	defer cancel()
	pipe := c.rdb.Pipeline()
	pipe.Incr(wctx, replicationProbeKey)
	acked := pipe.Do(wctx, "WAIT", c.opts.WaitReplicas, c.opts.WaitTimeout.Milliseconds())
	if _, err := pipe.Exec(wctx); err != nil {
		return &jobs.UncertainError{JobID: id, Err: fmt.Errorf("waiting for %d Redis replicas: %w", c.opts.WaitReplicas, err)}
	}
	if n, _ := acked.Int64(); n < int64(c.opts.WaitReplicas) {
		c.opts.Logger.WarnContext(ctx, "job not acknowledged by enough Redis replicas", slog.String("job_id", id),
			slog.Int64("acknowledged", n), slog.Int("wanted", c.opts.WaitReplicas))
		return &jobs.UncertainError{JobID: id, Err: fmt.Errorf("%w: %d of %d Redis replicas acknowledged it within %v",
			jobs.ErrNotReplicated, n, c.opts.WaitReplicas, c.opts.WaitTimeout)}
	}
	return nil
}

// asynqQueuesKey is the set of queue names asynq's Inspector knows
// (asynq's internal base.AllQueues).
const asynqQueuesKey = "asynq:queues"

// registerQueues adds every queue of the package to asynq's queue set.
// asynq writes the set once per process and queue, at the first enqueue,
// so after Redis lost its data (FLUSHALL, a failover to an empty replica,
// a restart without persistence) the Inspector would answer "queue not
// found" for every new job until the processes restart.
func (c *Client) registerQueues(ctx context.Context) error {
	names := make([]any, 0, len(jobs.Queues))
	for q := range jobs.Queues {
		names = append(names, q)
	}
	return c.rdb.SAdd(ctx, asynqQueuesKey, names...).Err()
}

// taskInfo reads a task through the Inspector. When asynq answers that the
// queue does not exist, the queue set is re-registered (Redis lost its
// data) and the read repeated once. A task record without its message (a
// worker wrote a result or state into a task that Redis lost) answers
// asynq.ErrTaskNotFound, and the fragment is dropped.
func (c *Client) taskInfo(ctx context.Context, queue, id string) (*asynq.TaskInfo, error) {
	info, err := c.inspector.GetTaskInfo(queue, id)
	if errors.Is(err, asynq.ErrQueueNotFound) {
		if rerr := c.registerQueues(ctx); rerr != nil {
			return nil, rerr
		}
		c.opts.Logger.InfoContext(ctx, "asynq's queue set was missing (Redis lost its data?): registered the queues again", slog.String("queue", queue))
		info, err = c.inspector.GetTaskInfo(queue, id)
	}
	if err != nil && undecodable(err) {
		dctx, cancel := context.WithTimeout(ctx, c.opts.RedisTimeout)
		defer cancel()
		dropped, derr := dropFragment.Run(dctx, c.rdb, []string{taskKey(queue, id)}).Int()
		if derr == nil && dropped == 1 {
			c.opts.Logger.InfoContext(ctx, "dropped the remains of a job lost with Redis's data", slog.String("job_id", id))
			return nil, asynq.ErrTaskNotFound
		}
	}
	return info, err
}

// undecodable reports whether asynq read a task record but could not make
// sense of it (its codes FAILED_PRECONDITION and INTERNAL_ERROR, e.g. `""
// is not supported task state`), as opposed to Redis not answering
// (UNKNOWN: a redis command error): only then may the record be a
// fragment. asynq's error types are internal, hence the text.
func undecodable(err error) bool {
	msg := err.Error()
	return !strings.Contains(msg, "UNKNOWN") && !strings.Contains(msg, "redis") &&
		(strings.Contains(msg, "FAILED_PRECONDITION") || strings.Contains(msg, "INTERNAL_ERROR"))
}

// taskKey is the hash asynq keeps a task in (asynq's base.TaskKey).
func taskKey(queue, id string) string { return "asynq:{" + queue + "}:t:" + id }

// dropFragment deletes a task hash that has no message: what is left when
// a worker writes into a task after Redis lost it. asynq writes a task's
// message in the same script that creates it, so a live task always has
// one.
var dropFragment = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 and redis.call("HEXISTS", KEYS[1], "msg") == 0 then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// lookup asks whether a task exists, within ctx (the Inspector takes no
// context: a stalled Redis answers ctx's error).
func (c *Client) lookup(ctx context.Context, queue, id string) error {
	done := make(chan error, 1)
	go func() {
		_, err := c.taskInfo(ctx, queue, id)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Get returns the view of a job owned by owner. An unknown job and another
// owner's job both return ErrNotFound. A batch job's state is its
// record's, which outlives the submit task.
func (c *Client) Get(ctx context.Context, owner, id string) (*jobs.View, error) {
	spec, ok := jobs.SpecForID(id)
	if !ok {
		return nil, jobs.ErrNotFound
	}
	var rec *BatchJob
	if spec.Type == jobs.TypeBatchSubmit {
		var err error
		if rec, err = LoadBatchJob(ctx, c.rdb, id); err != nil {
			return nil, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
		}
		if rec != nil && rec.Owner != owner {
			return nil, jobs.ErrNotFound
		}
	}
	info, err := c.taskInfo(ctx, spec.Queue, id)
	switch {
	case jobs.IsNotFound(err):
		info = nil
	case err != nil:
		return nil, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
	}
	cancelled := false
	if rec == nil && info != nil && info.State == asynq.TaskStateArchived {
		if cancelled, err = c.isCancelled(ctx, id); err != nil {
			return nil, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
		}
	}
	return assemble(owner, spec, rec, info, cancelled)
}

// assemble builds owner's view of a job from what Redis holds of it: its
// batch record (batch jobs), its asynq task (nil when gone) and whether its
// owner cancelled it. It answers ErrNotFound for another owner's job.
func assemble(owner string, spec jobs.Spec, rec *BatchJob, info *asynq.TaskInfo, cancelled bool) (*jobs.View, error) {
	if rec != nil && rec.Owner != owner {
		return nil, jobs.ErrNotFound
	}
	if info == nil {
		if rec != nil {
			return batchView(rec, nil), nil
		}
		return nil, jobs.ErrNotFound
	}
	v := jobs.ViewOf(info)
	if v.Owner != owner {
		return nil, jobs.ErrNotFound
	}
	if rec != nil {
		return batchView(rec, info), nil
	}
	if spec.Type == jobs.TypeBatchSubmit && !v.State.Final() {
		// Not begun yet: pending whatever asynq's state (a submit that
		// failed before it began is retried as pending).
		v.State, v.Attempts = jobs.StatePending, 0
	}
	if info.State == asynq.TaskStateArchived && cancelled {
		v.State, v.Error = jobs.StateCancelled, &jobs.Failure{Class: "cancelled", Message: "cancelled by its owner"}
	}
	return v, nil
}

// Wait waits up to d for a job to end and returns its view then, or when d
// has passed, whatever its state. It wakes on the workers' announcements and
// re-reads the state every RecheckInterval in case one was lost. progress,
// when not nil, is called with each view read while waiting.
func (c *Client) Wait(ctx context.Context, owner, id string, d time.Duration, progress func(*jobs.View)) (*jobs.View, error) {
	announced, unregister := c.hub.register(id)
	defer unregister()
	// An announcement made before the subscription is confirmed is lost:
	// wait for it (the first wait of a process, or after a reconnect), for
	// as long as the caller waits, at most 5 s.
	c.hub.waitReady(min(d, 5*time.Second))

	v, err := c.Get(ctx, owner, id)
	if err != nil || v.State.Final() || d <= 0 {
		return v, err
	}
	until := time.Now().Add(d)
	timer := time.NewTimer(d)
	defer timer.Stop()
	recheck := time.NewTicker(c.opts.RecheckInterval)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return v, nil
		case <-timer.C:
			return v, nil
		case <-recheck.C:
		case <-announced:
			// The worker announces before asynq records the outcome, so
			// the state may still read active for a while (on a loaded
			// machine, longer than a poll interval): re-read until it
			// does not, for as long as the wait lasts. A batch job's
			// record is written before its announcement.
			if isBatchJob(id) {
				v, err = c.Get(ctx, owner, id)
			} else {
				v, err = c.settle(ctx, owner, id, until)
			}
			if err != nil {
				return nil, err
			}
			if v.State.Final() {
				return v, nil
			}
			if progress != nil {
				progress(v)
			}
			continue
		}
		if v, err = c.Get(ctx, owner, id); err != nil {
			return nil, err
		}
		if v.State.Final() {
			return v, nil
		}
		if progress != nil {
			progress(v)
		}
	}
}

// settle re-reads a job until it leaves the active state, at most until
// deadline, every 1 ms at first, then less often, up to every 50 ms.
func (c *Client) settle(ctx context.Context, owner, id string, deadline time.Time) (*jobs.View, error) {
	delay := time.Millisecond
	for {
		v, err := c.Get(ctx, owner, id)
		if err != nil || v.State != jobs.StateActive || time.Now().After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// isBatchJob reports whether a job ID names a batch job.
func isBatchJob(id string) bool {
	spec, _ := jobs.SpecForID(id)
	return spec.Type == jobs.TypeBatchSubmit
}

var _ io.Closer = (*Client)(nil)

// What the MCP task layer (package mcp) needs of the store beyond the
// tools: the Redis connection where it keeps its task records and the
// retention that bounds a task's TTL.

// Redis returns the client's Redis connection.
func (c *Client) Redis() redis.UniversalClient { return c.rdb }

// Retention is how long a job that ended stays readable (Options.Retention).
func (c *Client) Retention() time.Duration { return c.opts.Retention }
