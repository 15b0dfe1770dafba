package mcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/jobs"
)

// The task records and HTTP sessions in Redis.

func taskKey(owner, id string) string  { return "mcpjobs:mcptask:" + owner + ":" + id }
func taskIndexKey(owner string) string { return "mcpjobs:mcptasks:" + owner }
func sessionKey(id string) string      { return "mcpjobs:mcp:session:" + id }

// taskRecord is what the protocol adds to a job made a task. It expires
// with the task's TTL; a job without one is not a task.
type taskRecord struct {
	id      string
	tool    string
	created time.Time
	ttl     time.Duration
	poll    time.Duration
}

// create records the job v as owner's task, before its ID is handed out.
func (l *taskLayer) create(ctx context.Context, owner, tool string, v *jobs.View, ttl time.Duration) (*taskRecord, error) {
	created := time.Now().UTC()
	if v.CreatedAt != nil {
		created = v.CreatedAt.UTC()
	}
	t := &taskRecord{id: v.JobID, tool: tool, created: created, ttl: ttl, poll: l.cfg.PollInterval(v)}
	pipe := l.rdb.TxPipeline()
	pipe.HSet(ctx, taskKey(owner, t.id), map[string]any{
		"tool":       tool,
		"created_at": created.Format(time.RFC3339Nano),
		"ttl_ms":     ttl.Milliseconds(),
		"poll_ms":    t.poll.Milliseconds(),
	})
	pipe.PExpire(ctx, taskKey(owner, t.id), ttl)
	pipe.ZAdd(ctx, taskIndexKey(owner), redis.Z{Score: float64(created.UnixMilli()), Member: t.id})
	pipe.ZRemRangeByScore(ctx, taskIndexKey(owner), "-inf", "("+strconv.FormatInt(created.Add(-l.cfg.Jobs.Retention()).UnixMilli(), 10))
	pipe.PExpire(ctx, taskIndexKey(owner), l.cfg.Jobs.Retention())
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
	}
	return t, nil
}

// load returns owner's task id and its job's view; ErrNotFound when it is
// not owner's, not a task, or has expired.
func (l *taskLayer) load(ctx context.Context, owner, id string) (*taskRecord, *jobs.View, error) {
	h, err := l.rdb.HGetAll(ctx, taskKey(owner, id)).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
	}
	if len(h) == 0 {
		return nil, nil, jobs.ErrNotFound
	}
	t := &taskRecord{id: id, tool: h["tool"]}
	t.created, _ = time.Parse(time.RFC3339Nano, h["created_at"])
	ms, _ := strconv.ParseInt(h["ttl_ms"], 10, 64)
	t.ttl = time.Duration(ms) * time.Millisecond
	ms, _ = strconv.ParseInt(h["poll_ms"], 10, 64)
	t.poll = time.Duration(ms) * time.Millisecond
	v, err := l.cfg.Jobs.Get(ctx, owner, id)
	if err != nil {
		return nil, nil, err
	}
	return t, v, nil
}

// legacy is the task as 2025-11-25 shows it.
func (t *taskRecord) legacy(v *jobs.View) map[string]any {
	m := map[string]any{
		"taskId":        t.id,
		"status":        legacyStatus(v),
		"createdAt":     t.created.Format(time.RFC3339Nano),
		"lastUpdatedAt": lastUpdated(v, t.created).Format(time.RFC3339Nano),
		"ttl":           t.ttl.Milliseconds(),
		"pollInterval":  t.poll.Milliseconds(),
	}
	if msg := statusMessage(v); msg != "" {
		m["statusMessage"] = msg
	}
	return m
}

// extension is the task as the 2026-07-28 extension shows it; with
// outcome, a task that ended inlines its result or error.
func (t *taskRecord) extension(v *jobs.View, outcome func(*jobs.View) TaskOutcome) map[string]any {
	m := map[string]any{
		"taskId":         t.id,
		"status":         legacyStatus(v),
		"createdAt":      t.created.Format(time.RFC3339Nano),
		"lastUpdatedAt":  lastUpdated(v, t.created).Format(time.RFC3339Nano),
		"ttlMs":          t.ttl.Milliseconds(),
		"pollIntervalMs": t.poll.Milliseconds(),
	}
	if msg := statusMessage(v); msg != "" {
		m["statusMessage"] = msg
	}
	if outcome == nil {
		return m
	}
	m["status"] = extensionStatus(v, outcome)
	if v.State == jobs.StateCompleted || v.State == jobs.StateFailed {
		out := outcome(v)
		if out.Err != nil {
			m["error"] = out.Err
		} else if res, err := toMap(out.Result); err == nil {
			m["result"] = res
		}
	}
	return m
}

// redisSessions keeps mcp-go's HTTP session IDs in Redis, so that a session
// begun on one replica goes on on any other. The value is what the session
// negotiated for tasks.
type redisSessions struct {
	rdb   redis.UniversalClient
	ttl   time.Duration
	cache *sessionCache // nil: every read goes to Redis
}

const (
	sessionPrefix     = "mcp-session-"
	sessionTerminated = "terminated"
	sessionTimeout    = 5 * time.Second
)

var errUnknownSession = errors.New("mcp: unknown or expired session; initialize again")

// Generate implements mcpserver.SessionIdManager.
func (s *redisSessions) Generate() string {
	id := sessionPrefix + uuid.NewString()
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	defer cancel()
	// Should this fail, the session's next request finds no session and the
	// client initializes again.
	_ = s.rdb.Set(ctx, sessionKey(id), string(shapeNone), s.ttl).Err()
	s.forget(id)
	return id
}

// Validate implements mcpserver.SessionIdManager.
func (s *redisSessions) Validate(id string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	defer cancel()
	return s.read(ctx, id).validate()
}

// sessionRead is one read of a session's record: its value (what it
// negotiated for tasks, or sessionTerminated) or why there is none.
type sessionRead struct {
	value string
	err   error
}

// read reads session id's record: from the replica's cache when it holds
// it, else from Redis, renewing its TTL once half of it has passed (a
// renewal is a write: every replica's cache drops the session, so it is
// not made at every read).
func (s *redisSessions) read(ctx context.Context, id string) sessionRead {
	if _, err := uuid.Parse(id[min(len(id), len(sessionPrefix)):]); err != nil || len(id) <= len(sessionPrefix) {
		return sessionRead{err: errUnknownSession}
	}
	if s.cache != nil {
		if v, ok := s.cache.get(id); ok {
			return sessionRead{value: v}
		}
	}
	var epoch uint64
	if s.cache != nil {
		epoch = s.cache.begin()
	}
	pipe := s.rdb.Pipeline()
	get := pipe.Get(ctx, sessionKey(id))
	left := pipe.PTTL(ctx, sessionKey(id))
	_, _ = pipe.Exec(ctx)
	v, err := get.Result()
	switch {
	case errors.Is(err, redis.Nil):
		return sessionRead{err: errUnknownSession}
	case err != nil:
		return sessionRead{err: fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)}
	}
	if d, err := left.Result(); err == nil && d >= 0 && d < s.ttl/2 {
		// Should this fail, the next read that misses the cache renews.
		_ = s.rdb.Expire(ctx, sessionKey(id), s.ttl).Err()
		return sessionRead{value: v} // the renewal drops it from every cache
	}
	if s.cache != nil {
		s.cache.put(id, v, epoch, time.Now())
	}
	return sessionRead{value: v}
}

// forget drops a session this replica writes from its cache.
func (s *redisSessions) forget(id string) {
	if s.cache != nil {
		s.cache.forget(id)
	}
}

func (r sessionRead) validate() (bool, error) {
	if r.err != nil {
		return false, r.err
	}
	return r.value == sessionTerminated, nil
}

// requestSession is the session a request names, read at most once
// whoever asks first: the task layer (what the session negotiated) or
// mcp-go (whether it is valid). One round trip to Redis per request, not
// two.
type requestSession struct {
	sessions *redisSessions
	id       string
	once     sync.Once
	got      sessionRead
}

type requestSessionKey struct{}

// withRequestSession returns r with a requestSession for the session
// it names, when it names one.
func (s *redisSessions) withRequestSession(r *http.Request) *http.Request {
	id := r.Header.Get(mcpserver.HeaderKeySessionID)
	if id == "" {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), requestSessionKey{}, &requestSession{sessions: s, id: id}))
}

// requestSessionOf returns the request's session, nil when it names none.
func requestSessionOf(ctx context.Context) *requestSession {
	rs, _ := ctx.Value(requestSessionKey{}).(*requestSession)
	return rs
}

// read reads the session once.
func (rs *requestSession) read(ctx context.Context) sessionRead {
	rs.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sessionTimeout)
		defer cancel()
		rs.got = rs.sessions.read(ctx, rs.id)
	})
	return rs.got
}

// ResolveSessionIdManager implements mcpserver.SessionIdManagerResolver:
// for a request that names a session, a manager whose Validate uses the
// request's one read.
func (s *redisSessions) ResolveSessionIdManager(r *http.Request) mcpserver.SessionIdManager {
	if rs := requestSessionOf(r.Context()); rs != nil {
		return requestSessions{redisSessions: s, rs: rs, ctx: r.Context()}
	}
	return s
}

// requestSessions is redisSessions for one request.
type requestSessions struct {
	*redisSessions
	rs  *requestSession
	ctx context.Context
}

// Validate implements mcpserver.SessionIdManager.
func (m requestSessions) Validate(id string) (bool, error) {
	if id == m.rs.id {
		return m.rs.read(m.ctx).validate()
	}
	return m.redisSessions.Validate(id)
}

// Terminate implements mcpserver.SessionIdManager.
func (s *redisSessions) Terminate(id string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	defer cancel()
	err := s.rdb.SetArgs(ctx, sessionKey(id), sessionTerminated, redis.SetArgs{Mode: "XX", TTL: s.ttl}).Err()
	s.forget(id)
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("%w: %v", jobs.ErrUnavailable, err)
	}
	return false, nil
}
