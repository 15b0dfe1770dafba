package token

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// Authenticator fetches a new token from the platform; *intranet.Client is one.
type Authenticator interface {
	Authenticate(ctx context.Context) (intranet.Token, error)
}

// Sentinel errors.
var (
	// ErrAuthUnavailable: the auth endpoint failed recently and the shared
	// cooldown has not run out; try again later. It wraps the last failure.
	ErrAuthUnavailable = errors.New("token: platform auth unavailable (cooling down after a failure)")
	// ErrWaitTimeout: another replica held the refresh lock for longer
	// than Config.WaitTimeout.
	ErrWaitTimeout = errors.New("token: timed out waiting for another replica's refresh")
)

// Config configures a Shared token.
type Config struct {
	// Redis holds the record, the lock and the cooldown. Required.
	Redis redis.UniversalClient
	// Auth fetches new tokens. Required.
	Auth Authenticator
	// Key is the record's Redis key; the lock, cooldown and channel are
	// derived from it. Default: "mcpjobs:token".
	Key string
	// Replica names this process in the record and the lock.
	// Default: hostname:pid.
	Replica string
	// Margin is how long before expiry a token is refreshed. Default: the
	// smaller of 60s and 10% of the token's lifetime.
	Margin time.Duration
	// AuthTimeout bounds one auth call. Default: 15s.
	AuthTimeout time.Duration
	// LockTTL is how long the refresh lock lives if its holder dies; it
	// must exceed AuthTimeout. Default: 2 × AuthTimeout.
	LockTTL time.Duration
	// WaitTimeout bounds how long a caller waits for another replica's
	// refresh before giving up. Default: LockTTL + AuthTimeout.
	WaitTimeout time.Duration
	// CooldownBase and CooldownMax bound the shared pause after a failed
	// auth call (doubling per consecutive failure). An invalid-credentials
	// answer (40101) waits at least InvalidCredentialsCooldown.
	// Defaults: 1s, 60s and 30s.
	CooldownBase, CooldownMax, InvalidCredentialsCooldown time.Duration
	// OnLockWait, when set, is called with the duration of every wait for
	// another replica's refresh (for a metrics histogram).
	OnLockWait func(time.Duration)
	// Logger receives the logs. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.Redis == nil {
		return c, errors.New("token: Config.Redis is nil")
	}
	if c.Auth == nil {
		return c, errors.New("token: Config.Auth is nil (pass the *intranet.Client)")
	}
	if c.Key == "" {
		c.Key = "mcpjobs:token"
	}
	if c.Replica == "" {
		host, _ := os.Hostname()
		c.Replica = host + ":" + strconv.Itoa(os.Getpid())
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = 15 * time.Second
	}
	if c.LockTTL <= 0 {
		c.LockTTL = 2 * c.AuthTimeout
	}
	if c.LockTTL <= c.AuthTimeout {
		return c, fmt.Errorf("token: LockTTL %v must exceed AuthTimeout %v, or a slow holder's token could outlive its lock", c.LockTTL, c.AuthTimeout)
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = c.LockTTL + c.AuthTimeout
	}
	if c.CooldownBase <= 0 {
		c.CooldownBase = time.Second
	}
	if c.CooldownMax <= 0 {
		c.CooldownMax = time.Minute
	}
	if c.InvalidCredentialsCooldown <= 0 {
		c.InvalidCredentialsCooldown = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Shared is the token all replicas share. It is safe for concurrent use and
// implements worker.TokenSource.
type Shared struct {
	cfg    Config
	rdb    redis.UniversalClient
	locker *redislock.Client
	log    *slog.Logger
	group  singleflight.Group
	stats  counters

	lockKey, cooldownKey, failuresKey, channel string

	// dead is the newest generation the platform refused (40003) whose
	// replacement failed: it is not handed out again, so jobs waiting on an
	// auth outage do not call the platform with a token known to be dead.
	dead atomic.Int64

	mu      sync.Mutex
	cached  Record
	changed chan struct{} // closed and replaced when a refresh is announced
	sub     *redis.PubSub
}

// New returns a Shared token. Close stops its subscription.
func New(cfg Config) (*Shared, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Shared{
		cfg: cfg, rdb: cfg.Redis, locker: redislock.New(cfg.Redis), log: cfg.Logger,
		lockKey: cfg.Key + ":lock", cooldownKey: cfg.Key + ":cooldown", failuresKey: cfg.Key + ":failures",
		channel: cfg.Key + ":refreshed",
		changed: make(chan struct{}),
	}
	s.sub = s.rdb.Subscribe(context.Background(), s.channel)
	go s.listen(s.sub)
	return s, nil
}

// Close stops the subscription.
func (s *Shared) Close() error { return s.sub.Close() }

// listen drops the cached copy and wakes waiters whenever a replica
// announces a refresh.
func (s *Shared) listen(sub *redis.PubSub) {
	for range sub.Channel() {
		s.mu.Lock()
		s.cached = Record{}
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
}

// margin is how long before expiry a token counts as due for refresh.
func (s *Shared) margin(r Record) time.Duration {
	if s.cfg.Margin > 0 {
		return s.cfg.Margin
	}
	m := time.Minute
	if life := r.Token.ExpiresAt.Sub(r.Token.IssuedAt); life > 0 && life/10 < m {
		m = life / 10
	}
	return m
}

// Token returns a valid token: the in-memory copy while it is valid, else
// the Redis record, refreshing it when it is missing or due.
func (s *Shared) Token(ctx context.Context) (intranet.Token, error) {
	now := s.cfg.Now()
	s.mu.Lock()
	rec := s.cached
	s.mu.Unlock()
	if s.usable(rec, s.margin(rec), now) {
		return rec.Token, nil
	}
	rec, err := load(ctx, s.rdb, s.cfg.Key)
	if err != nil {
		return intranet.Token{}, fmt.Errorf("token: read record: %w", err)
	}
	if s.usable(rec, s.margin(rec), now) {
		s.remember(rec)
		return rec.Token, nil
	}
	fresh, err := s.replace(ctx, rec.Generation)
	if err != nil {
		if s.usable(rec, 0, now) {
			// Due but not yet expired: keep using it while refresh fails.
			s.log.WarnContext(ctx, "token refresh ahead of expiry failed; using the current token", slog.Any("error", err))
			return rec.Token, nil
		}
		return intranet.Token{}, err
	}
	return fresh.Token, nil
}

// Refresh replaces stale, a token the platform refused (40003), and returns
// its successor. Concurrent callers share one refresh; across replicas only
// one auth call is made per generation.
func (s *Shared) Refresh(ctx context.Context, stale intranet.Token) (intranet.Token, error) {
	s.stats.expiredSeen.Add(1)
	s.mu.Lock()
	rec := s.cached
	s.mu.Unlock()
	var gen int64
	switch {
	case rec.Token.Value == stale.Value && rec.Generation > 0:
		gen = rec.Generation
	default:
		// Our copy has moved on or is gone: see what Redis holds.
		cur, err := load(ctx, s.rdb, s.cfg.Key)
		if err != nil {
			return intranet.Token{}, fmt.Errorf("token: read record: %w", err)
		}
		if cur.Token.Value != stale.Value && cur.validFor(0, s.cfg.Now()) {
			s.remember(cur)
			return cur.Token, nil
		}
		gen = cur.Generation
	}
	fresh, err := s.replace(ctx, gen)
	if err != nil && gen > 0 {
		for d := s.dead.Load(); d < gen && !s.dead.CompareAndSwap(d, gen); d = s.dead.Load() {
		}
	}
	return fresh.Token, err
}

// usable reports whether r may be handed out: valid for d more, and not a
// generation the platform refused.
func (s *Shared) usable(r Record, d time.Duration, now time.Time) bool {
	return r.validFor(d, now) && r.Generation > s.dead.Load()
}

// ForceRefresh replaces the current generation through the same lock, as
// `mcpjobs token refresh` does.
func (s *Shared) ForceRefresh(ctx context.Context) (Record, error) {
	cur, err := load(ctx, s.rdb, s.cfg.Key)
	if err != nil {
		return Record{}, fmt.Errorf("token: read record: %w", err)
	}
	return s.replace(ctx, cur.Generation)
}

func (s *Shared) remember(r Record) {
	s.mu.Lock()
	if r.Generation >= s.cached.Generation {
		s.cached = r
	}
	s.mu.Unlock()
}

// replace returns a record newer than generation gen, refreshing it if no
// one else does. Callers in this process share one attempt per generation.
func (s *Shared) replace(ctx context.Context, gen int64) (Record, error) {
	ch := s.group.DoChan(strconv.FormatInt(gen, 10), func() (any, error) {
		// The shared attempt outlives any one caller's cancellation.
		return s.replaceShared(context.WithoutCancel(ctx), gen)
	})
	select {
	case <-ctx.Done():
		return Record{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return Record{}, r.Err
		}
		return r.Val.(Record), nil
	}
}

func (s *Shared) replaceShared(ctx context.Context, gen int64) (Record, error) {
	start := s.cfg.Now()
	deadline := start.Add(s.cfg.WaitTimeout)
	waited := false
	defer func() {
		if waited {
			d := s.cfg.Now().Sub(start)
			s.stats.lockWaits.Add(1)
			s.stats.lockWaitNanos.Add(int64(d))
			if s.cfg.OnLockWait != nil {
				s.cfg.OnLockWait(d)
			}
		}
	}()
	delay := 5 * time.Millisecond
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()

		rec, err := load(ctx, s.rdb, s.cfg.Key)
		if err != nil {
			return Record{}, fmt.Errorf("token: read record: %w", err)
		}
		if rec.Generation > gen && rec.validFor(0, s.cfg.Now()) {
			s.remember(rec)
			return rec, nil
		}
		if err := s.cooling(ctx); err != nil {
			return Record{}, err
		}
		lock, err := s.locker.Obtain(ctx, s.lockKey, s.cfg.LockTTL, &redislock.Options{
			RetryStrategy: redislock.NoRetry(),
			Metadata:      ":" + s.cfg.Replica,
		})
		switch {
		case err == nil:
			defer func() {
				if err := lock.Release(context.WithoutCancel(ctx)); err != nil && !errors.Is(err, redislock.ErrLockNotHeld) {
					s.log.Warn("token: release refresh lock", slog.Any("error", err))
				}
			}()
			return s.refreshLocked(ctx, gen)
		case !errors.Is(err, redislock.ErrNotObtained):
			return Record{}, fmt.Errorf("token: take refresh lock: %w", err)
		}
		// Another replica is refreshing: wait for its announcement, or
		// re-read soon in case the message is lost or the holder died.
		waited = true
		if s.cfg.Now().After(deadline) {
			return Record{}, ErrWaitTimeout
		}
		select {
		case <-changed:
		case <-time.After(delay + rand.N(delay)):
			delay = min(2*delay, 100*time.Millisecond)
		case <-ctx.Done():
			return Record{}, ctx.Err()
		}
	}
}

// refreshLocked runs under the lock: re-read, and call the auth endpoint
// only when generation gen is still current.
func (s *Shared) refreshLocked(ctx context.Context, gen int64) (Record, error) {
	rec, err := load(ctx, s.rdb, s.cfg.Key)
	if err != nil {
		return Record{}, fmt.Errorf("token: read record: %w", err)
	}
	if rec.Generation > gen && rec.validFor(0, s.cfg.Now()) {
		s.stats.refreshSkipped.Add(1)
		s.remember(rec)
		return rec, nil
	}
	actx, cancel := context.WithTimeout(ctx, s.cfg.AuthTimeout)
	start := s.cfg.Now()
	tok, err := s.cfg.Auth.Authenticate(actx)
	cancel()
	s.stats.authNanos.Add(int64(s.cfg.Now().Sub(start)))
	if err != nil {
		s.stats.refreshFailures.Add(1)
		s.coolDown(ctx, err)
		return Record{}, err
	}
	now := s.cfg.Now()
	newGen, err := store(ctx, s.rdb, s.cfg.Key, rec.Generation, tok, s.cfg.Replica, now)
	if err != nil {
		return Record{}, fmt.Errorf("token: store: %w", err)
	}
	if newGen == 0 {
		// The record moved on while we held the lock (ours ran out): the
		// newer token wins; ours is dropped.
		s.stats.writesRefused.Add(1)
		s.log.Warn("token: refresh lock ran out before the write; keeping the newer token", slog.Int64("generation", rec.Generation))
		cur, err := load(ctx, s.rdb, s.cfg.Key)
		if err != nil {
			return Record{}, fmt.Errorf("token: read record: %w", err)
		}
		s.remember(cur)
		return cur, nil
	}
	s.stats.refreshes.Add(1)
	_ = s.rdb.Del(ctx, s.cooldownKey, s.failuresKey).Err()
	fresh := Record{Token: tok, Generation: newGen, RefreshedBy: s.cfg.Replica, RefreshedAt: now}
	s.remember(fresh)
	if err := s.rdb.Publish(ctx, s.channel, newGen).Err(); err != nil {
		s.log.Warn("token: announce refresh", slog.Any("error", err))
	}
	s.log.InfoContext(ctx, "token refreshed", slog.Int64("generation", newGen), slog.Any("token", tok),
		slog.Time("expires_at", tok.ExpiresAt))
	return fresh, nil
}

// cooling returns ErrAuthUnavailable while a shared cooldown runs.
func (s *Shared) cooling(ctx context.Context) error {
	msg, err := s.rdb.Get(ctx, s.cooldownKey).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("token: read cooldown: %w", err)
	}
	return fmt.Errorf("%w: last failure: %s", ErrAuthUnavailable, msg)
}

// coolDown starts the shared pause after a failed auth call.
func (s *Shared) coolDown(ctx context.Context, authErr error) {
	n, err := s.rdb.Incr(ctx, s.failuresKey).Result()
	if err != nil {
		n = 1
	}
	_ = s.rdb.Expire(ctx, s.failuresKey, time.Hour).Err()
	d := s.cfg.CooldownBase
	for i := int64(1); i < n && d < s.cfg.CooldownMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.CooldownMax)
	if errors.Is(authErr, intranet.ErrInvalidCredentials) {
		d = max(d, s.cfg.InvalidCredentialsCooldown)
	}
	_ = s.rdb.Set(ctx, s.cooldownKey, authErr.Error(), d).Err()
	s.log.ErrorContext(ctx, "token: platform auth failed", slog.Any("error", authErr),
		slog.Int64("consecutive_failures", n), slog.Duration("cooldown", d))
}
