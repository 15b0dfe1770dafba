package token

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
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

// CredentialsFingerprinter is an Authenticator that names the credentials
// it would send now without revealing them; *intranet.Client is one (see
// intranet.Client.CredentialsFingerprint). The auth cooldown and failure
// count are kept per fingerprint, so one replica's wrong password never
// pauses a replica whose credentials work, and Heal notices rewritten
// credentials. An Authenticator without it counts as the credentials
// "default".
type CredentialsFingerprinter interface {
	CredentialsFingerprint() string
}

// Sentinel errors.
var (
	// ErrAuthUnavailable: the auth endpoint failed recently (an outage:
	// 5xx, timeouts, ...) for these credentials and their cooldown has not
	// run out; try again later. It wraps the last failure's text.
	ErrAuthUnavailable = errors.New("token: platform auth unavailable (cooling down after a failure)")
	// ErrWaitTimeout: another replica held the refresh lock for longer
	// than Config.WaitTimeout.
	ErrWaitTimeout = errors.New("token: timed out waiting for another replica's refresh")
	// ErrCredentialsRefused: the platform refused THIS replica's credentials
	// (40101), just now or within the cooldown that refusal started. An
	// error that matches it also matches intranet.ErrInvalidCredentials and
	// never ErrAuthUnavailable. Stop taking jobs and call Shared.Heal with
	// a backoff until it returns nil.
	ErrCredentialsRefused = errors.New("token: the platform refused this replica's credentials (40101); fix INTRANET_USERNAME and INTRANET_PASSWORD, or rewrite the file INTRANET_PASSWORD_FILE names")
)

// Config configures a Shared token.
type Config struct {
	// Redis holds the record, the lock and the cooldowns. Required.
	Redis redis.UniversalClient
	// Auth fetches new tokens. Required. When it implements
	// CredentialsFingerprinter, cooldowns are kept per credentials.
	Auth Authenticator
	// Key is the record's Redis key; the lock, issue counter, cooldowns
	// and channel are derived from it. Default: "mcpjobs:token".
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
	// CooldownBase and CooldownMax bound the pause after a failed auth
	// call (doubling per consecutive failure), shared by the replicas with
	// the same credentials. An invalid-credentials answer (40101) waits at
	// least InvalidCredentialsCooldown. Defaults: 1s, 60s and 30s.
	CooldownBase, CooldownMax, InvalidCredentialsCooldown time.Duration
	// OnLockWait, when set, is called with the duration of every wait for
	// another replica's refresh (for a metrics histogram). Default: nil.
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
		c.Key = DefaultKey
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

// DefaultKey is the record's Redis key when Config.Key is empty.
const DefaultKey = "mcpjobs:token"

// defaultCredentials names the credentials of an Authenticator that is not
// a CredentialsFingerprinter.
const defaultCredentials = "default"

// Kinds of cooldown, stored before the reason in the cooldown key.
const (
	kindUnavailable = "auth_unavailable"
	kindCredentials = "invalid_credentials"
)

// Shared is the token all replicas share. It is safe for concurrent use and
// implements worker.TokenSource.
type Shared struct {
	cfg    Config
	rdb    redis.UniversalClient
	locker *redislock.Client
	log    *slog.Logger
	group  singleflight.Group
	stats  counters

	lockKey, seqKey, channel string

	// obs orders this process's observations of the record: a number is
	// taken before each read or write of Redis, and the cache only takes a
	// record observed after the one it holds. Unlike generations or issue
	// numbers, it never goes back when Redis loses data.
	obs atomic.Int64

	mu        sync.Mutex
	cached    Record
	cachedObs int64
	// dead identifies (tokenID) the token the platform refused (40003)
	// whose replacement failed: it is not handed out again, so jobs waiting
	// on an auth outage do not call the platform with a token known to be
	// dead. It names one token, so it never refuses another, and it is
	// dropped as soon as the cache moves to another token.
	dead string
	// refusedCreds is the fingerprint of this replica's credentials that
	// the platform refused (40101), "" if none; refusedAt is when.
	refusedCreds string
	refusedAt    time.Time
	changed      chan struct{} // closed and replaced when a refresh is announced
	sub          *redis.PubSub
}

// New returns a Shared token. Close stops its subscription.
func New(cfg Config) (*Shared, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Shared{
		cfg: cfg, rdb: cfg.Redis, locker: redislock.New(cfg.Redis), log: cfg.Logger,
		lockKey: cfg.Key + ":lock", seqKey: cfg.Key + ":seq", channel: cfg.Key + ":refreshed",
		changed: make(chan struct{}),
	}
	s.sub = s.rdb.Subscribe(context.Background(), s.channel)
	go s.listen(s.sub)
	return s, nil
}

// Close stops the subscription.
func (s *Shared) Close() error { return s.sub.Close() }

// cooldownKey and failuresKey hold the auth cooldown and the count of
// consecutive failures of one set of credentials.
func cooldownKey(key, creds string) string { return key + ":cooldown:" + creds }
func failuresKey(key, creds string) string { return key + ":failures:" + creds }

// tokenID names a token in memory (singleflight keys, the dead marker):
// the full SHA-256 of its value, "" for no token.
func tokenID(v string) string {
	if v == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

// listen drops the cached copy and wakes waiters whenever a replica
// announces a refresh.
func (s *Shared) listen(sub *redis.PubSub) {
	for range sub.Channel() {
		s.mu.Lock()
		s.cached, s.cachedObs = Record{}, s.obs.Add(1)
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

// credentials is the fingerprint of the credentials the next auth call
// would send.
func (s *Shared) credentials() string {
	if f, ok := s.cfg.Auth.(CredentialsFingerprinter); ok {
		if fp := f.CredentialsFingerprint(); fp != "" {
			return fp
		}
	}
	return defaultCredentials
}

// load reads the record, with the observation number taken before.
func (s *Shared) load(ctx context.Context) (Record, int64, error) {
	obs := s.obs.Add(1)
	rec, err := load(ctx, s.rdb, s.cfg.Key)
	if err != nil {
		return Record{}, 0, fmt.Errorf("token: read record: %w", err)
	}
	return rec, obs, nil
}

// Token returns a valid token: the in-memory copy while it is valid, else
// the Redis record, refreshing it when it is missing or due. While a refresh
// ahead of expiry fails, the current token is still handed out.
func (s *Shared) Token(ctx context.Context) (intranet.Token, error) {
	now := s.cfg.Now()
	s.mu.Lock()
	rec := s.cached
	s.mu.Unlock()
	if s.usable(rec, s.margin(rec), now) {
		return rec.Token, nil
	}
	rec, obs, err := s.load(ctx)
	if err != nil {
		return intranet.Token{}, err
	}
	if s.usable(rec, s.margin(rec), now) {
		s.remember(rec, obs)
		return rec.Token, nil
	}
	fresh, err := s.replace(ctx, rec.Token.Value)
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
// its successor. Concurrent callers with the same stale token share one
// refresh; across replicas only one auth call is made per stale token.
func (s *Shared) Refresh(ctx context.Context, stale intranet.Token) (intranet.Token, error) {
	s.stats.expiredSeen.Add(1)
	s.mu.Lock()
	rec := s.cached
	s.mu.Unlock()
	if rec.Token.Value != stale.Value && s.usable(rec, 0, s.cfg.Now()) {
		// Our copy has already moved on.
		return rec.Token, nil
	}
	fresh, err := s.replace(ctx, stale.Value)
	if err != nil {
		if id := tokenID(stale.Value); id != "" {
			s.mu.Lock()
			s.dead = id
			s.mu.Unlock()
		}
		return intranet.Token{}, err
	}
	return fresh.Token, nil
}

// usable reports whether r may be handed out: valid for d more, and not
// the token the platform refused.
func (s *Shared) usable(r Record, d time.Duration, now time.Time) bool {
	if !r.validFor(d, now) {
		return false
	}
	s.mu.Lock()
	dead := s.dead
	s.mu.Unlock()
	return dead == "" || tokenID(r.Token.Value) != dead
}

// ForceRefresh replaces the token the record holds now through the same
// lock and write as a refresh after 40003, as `mcpjobs token refresh` does.
// When the platform refuses this process's credentials nothing shared
// changes: not the record, and no cooldown that other credentials see.
func (s *Shared) ForceRefresh(ctx context.Context) (Record, error) {
	cur, _, err := s.load(ctx)
	if err != nil {
		return Record{}, err
	}
	return s.replace(ctx, cur.Token.Value)
}

// CredentialsRefused reports whether the platform refused this replica's
// credentials (40101, or this credentials' refusal cooldown was seen) and
// neither a later auth call with them succeeded nor Heal found them
// changed. It reads memory only, so it suits a readiness probe. Token may
// still hand out a valid token that another replica fetched meanwhile.
func (s *Shared) CredentialsRefused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refusedCreds != ""
}

// Heal is what a replica parked on refused credentials calls, with a
// backoff, until it returns nil:
//
//   - nil at once, without an auth call, if the credentials were not
//     refused, or if they changed since the refusal (the password file was
//     rewritten), or if another replica with the same credentials has
//     stored a token since;
//   - while the cooldown of these credentials runs, its error (wrapping
//     ErrCredentialsRefused and intranet.ErrInvalidCredentials, or
//     ErrAuthUnavailable), without an auth call;
//   - otherwise the outcome of one auth call made through the same lock
//     and write as any refresh (the token is stored when it succeeds, which
//     ends the token the others hold: they adopt the new one on their next
//     40003 without an auth call). A refusal wraps ErrCredentialsRefused
//     and intranet.ErrInvalidCredentials and starts the cooldown again.
//
// So the fleet makes at most one auth call per cooldown with credentials
// that keep being refused.
func (s *Shared) Heal(ctx context.Context) error {
	creds := s.credentials()
	s.mu.Lock()
	refused, at := s.refusedCreds, s.refusedAt
	s.mu.Unlock()
	switch {
	case refused == "":
		return nil
	case refused != creds:
		s.credentialsWork(refused)
		s.log.InfoContext(ctx, "token: credentials changed since the platform refused them; resuming",
			slog.String("refused", refused), slog.String("credentials", creds))
		return nil
	}
	if err := s.cooling(ctx, creds); err != nil {
		return err
	}
	rec, obs, err := s.load(ctx)
	if err != nil {
		return err
	}
	if rec.Credentials == creds && rec.RefreshedAt.After(at) && s.usable(rec, 0, s.cfg.Now()) {
		// A replica with the same credentials got a token since.
		s.remember(rec, obs)
		s.credentialsWork(creds)
		return nil
	}
	_, err = s.replace(ctx, rec.Token.Value)
	return err
}

// refused records that the platform refused creds.
func (s *Shared) refused(creds string) {
	s.mu.Lock()
	if s.refusedCreds != creds {
		s.refusedCreds, s.refusedAt = creds, s.cfg.Now()
	}
	s.mu.Unlock()
}

// credentialsWork clears a refusal of creds.
func (s *Shared) credentialsWork(creds string) {
	s.mu.Lock()
	if s.refusedCreds == creds {
		s.refusedCreds, s.refusedAt = "", time.Time{}
	}
	s.mu.Unlock()
}

// remember caches r, observed at obs, unless a later observation is cached.
func (s *Shared) remember(r Record, obs int64) {
	s.mu.Lock()
	if obs > s.cachedObs {
		s.cached, s.cachedObs = r, obs
		if s.dead != "" && tokenID(r.Token.Value) != s.dead {
			s.dead = ""
		}
	}
	s.mu.Unlock()
}

// replace returns a record holding a valid token other than stale (the
// token value; "" when there was none), refreshing it if no one else does.
// Callers in this process share one attempt per stale token.
func (s *Shared) replace(ctx context.Context, stale string) (Record, error) {
	ch := s.group.DoChan(tokenID(stale), func() (any, error) {
		// The shared attempt outlives any one caller's cancellation.
		return s.replaceShared(context.WithoutCancel(ctx), stale)
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

// replaced reports whether rec holds a usable token other than stale.
func (s *Shared) replaced(rec Record, stale string) bool {
	return rec.Token.Value != stale && s.usable(rec, 0, s.cfg.Now())
}

func (s *Shared) replaceShared(ctx context.Context, stale string) (Record, error) {
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

		rec, obs, err := s.load(ctx)
		if err != nil {
			return Record{}, err
		}
		if s.replaced(rec, stale) {
			s.remember(rec, obs)
			return rec, nil
		}
		creds := s.credentials()
		if err := s.cooling(ctx, creds); err != nil {
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
			return s.refreshLocked(ctx, stale, creds)
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
// only when the record still holds stale (or no usable token). The write
// keeps whichever token the platform issued last (see set.lua).
func (s *Shared) refreshLocked(ctx context.Context, stale, creds string) (Record, error) {
	rec, obs, err := s.load(ctx)
	if err != nil {
		return Record{}, err
	}
	if s.replaced(rec, stale) {
		s.stats.refreshSkipped.Add(1)
		s.remember(rec, obs)
		return rec, nil
	}
	actx, cancel := context.WithTimeout(ctx, s.cfg.AuthTimeout)
	start := s.cfg.Now()
	tok, err := s.cfg.Auth.Authenticate(actx)
	cancel()
	s.stats.authNanos.Add(int64(s.cfg.Now().Sub(start)))
	if err != nil {
		s.stats.refreshFailures.Add(1)
		return Record{}, s.authFailed(ctx, creds, err)
	}
	// The platform has just ended every earlier token: number this one in
	// the order of issue before anything else, so that a slower writer of
	// an earlier token cannot overwrite it, and it overwrites any earlier.
	obs = s.obs.Add(1)
	seq, err := takeSeq(ctx, s.rdb, s.cfg.Key, s.seqKey)
	if err != nil {
		return Record{}, fmt.Errorf("token: number the new token: %w", err)
	}
	now := s.cfg.Now()
	fresh := Record{Token: tok, Seq: seq, Credentials: creds, RefreshedBy: s.cfg.Replica, RefreshedAt: now}
	fresh.Generation, err = store(ctx, s.rdb, s.cfg.Key, fresh)
	if err != nil {
		return Record{}, fmt.Errorf("token: store: %w", err)
	}
	s.credentialsWork(creds)
	if fresh.Generation == 0 {
		// A token issued after ours is stored already: ours is dead, the
		// stored one is live. Adopt it.
		s.stats.writesRefused.Add(1)
		s.log.Warn("token: a token issued after ours is already stored; adopting it", slog.Int64("seq", seq))
		cur, obs, err := s.load(ctx)
		if err != nil {
			return Record{}, err
		}
		s.remember(cur, obs)
		return cur, nil
	}
	s.stats.refreshes.Add(1)
	_ = s.rdb.Del(ctx, cooldownKey(s.cfg.Key, creds), failuresKey(s.cfg.Key, creds)).Err()
	s.remember(fresh, obs)
	if err := s.rdb.Publish(ctx, s.channel, fresh.Generation).Err(); err != nil {
		s.log.Warn("token: announce refresh", slog.Any("error", err))
	}
	s.log.InfoContext(ctx, "token refreshed", slog.Int64("generation", fresh.Generation), slog.Int64("seq", seq),
		slog.Any("token", tok), slog.String("credentials", creds), slog.Time("expires_at", tok.ExpiresAt))
	return fresh, nil
}

// cooling returns an error while the cooldown of creds runs: one wrapping
// ErrCredentialsRefused and intranet.ErrInvalidCredentials after a 40101,
// else ErrAuthUnavailable.
func (s *Shared) cooling(ctx context.Context, creds string) error {
	v, err := s.rdb.Get(ctx, cooldownKey(s.cfg.Key, creds)).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("token: read cooldown: %w", err)
	}
	kind, reason, _ := strings.Cut(v, "\n")
	if kind == kindCredentials {
		s.refused(creds)
		return fmt.Errorf("%w (credentials %s; cooling down after: %s): %w", ErrCredentialsRefused, creds, reason, intranet.ErrInvalidCredentials)
	}
	return fmt.Errorf("%w: last failure: %s", ErrAuthUnavailable, reason)
}

// authFailed starts the cooldown of creds after a failed auth call and
// returns the error for the callers.
func (s *Shared) authFailed(ctx context.Context, creds string, authErr error) error {
	invalid := errors.Is(authErr, intranet.ErrInvalidCredentials)
	if invalid {
		s.stats.invalidCredentials.Add(1)
		s.refused(creds)
		if now := s.credentials(); now != creds {
			// Rewritten during the call: the refusal may be of either;
			// leave the cooldowns alone and let Heal or the next call tell.
			s.log.WarnContext(ctx, "token: platform refused the credentials while they were being changed",
				slog.String("credentials", creds), slog.String("now", now), slog.Any("error", authErr))
			return fmt.Errorf("%w (credentials %s): %w", ErrCredentialsRefused, creds, authErr)
		}
	}
	fk := failuresKey(s.cfg.Key, creds)
	n, err := s.rdb.Incr(ctx, fk).Result()
	if err != nil {
		n = 1
	}
	_ = s.rdb.Expire(ctx, fk, time.Hour).Err()
	d := s.cfg.CooldownBase
	for i := int64(1); i < n && d < s.cfg.CooldownMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.CooldownMax)
	kind := kindUnavailable
	if invalid {
		d = max(d, s.cfg.InvalidCredentialsCooldown)
		kind = kindCredentials
	}
	_ = s.rdb.Set(ctx, cooldownKey(s.cfg.Key, creds), kind+"\n"+authErr.Error(), d).Err()
	s.log.ErrorContext(ctx, "token: platform auth failed", slog.Any("error", authErr), slog.String("credentials", creds),
		slog.Int64("consecutive_failures", n), slog.Duration("cooldown", d))
	if invalid {
		return fmt.Errorf("%w (credentials %s): %w", ErrCredentialsRefused, creds, authErr)
	}
	return authErr
}
