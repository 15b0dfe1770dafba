package token_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
	"github.com/mcpjobs/mcpjobs/worker/simulator"
	"github.com/mcpjobs/mcpjobs/worker/token"
)

type env struct {
	redis  *redistest.Server
	sim    *simulator.Simulator
	simURL string
}

func setup(t *testing.T, simCfg simulator.Config) *env {
	t.Helper()
	sim, err := simulator.New(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	return &env{redis: redistest.Start(t), sim: sim, simURL: hs.URL}
}

func (e *env) client(t *testing.T, password string) *intranet.Client {
	t.Helper()
	if password == "" {
		password = simulator.DefaultPassword
	}
	c, err := intranet.New(intranet.Config{BaseURL: e.simURL, Username: simulator.DefaultUsername, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// replica is one process's view: its own Redis connection, client and token.
func (e *env) replica(t *testing.T, name string, edit func(*token.Config)) (*token.Shared, *intranet.Client) {
	t.Helper()
	c := e.client(t, "")
	cfg := token.Config{Redis: e.redis.Client(t), Auth: c, Replica: name,
		AuthTimeout: 2 * time.Second, CooldownBase: 50 * time.Millisecond, CooldownMax: 200 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	s, err := token.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, c
}

// callOnce makes one platform call with the shared token, refreshing and
// repeating once on 40003, as the worker does.
func callOnce(ctx context.Context, s *token.Shared, c *intranet.Client) error {
	tok, err := s.Token(ctx)
	if err != nil {
		return err
	}
	body := map[string]string{"code": "var a = Image('dem_30m')", "language": "javascript"}
	_, err = c.Call(ctx, intranet.OpDAG, tok.Value, body)
	if !errors.Is(err, intranet.ErrTokenExpired) {
		return err
	}
	if tok, err = s.Refresh(ctx, tok); err != nil {
		return err
	}
	_, err = c.Call(ctx, intranet.OpDAG, tok.Value, body)
	return err
}

// TestStorm: K replicas × M callers, E forced expiries → E+1 auth calls
// (the first token and one per expiry), and no call fails.
func TestStorm(t *testing.T) {
	const replicas, callers, expiries = 3, 16, 5
	e := setup(t, simulator.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	var failures, calls atomic.Int64
	var wg sync.WaitGroup
	var firstErr sync.Once
	var errSeen error
	for r := range replicas {
		s, c := e.replica(t, fmt.Sprintf("replica-%d", r), nil)
		for range callers {
			wg.Go(func() {
				for ctx.Err() == nil {
					err := callOnce(ctx, s, c)
					if err != nil && ctx.Err() == nil {
						failures.Add(1)
						firstErr.Do(func() { errSeen = err })
					}
					calls.Add(1)
				}
			})
		}
	}
	// Wait for tokens to be issued, not only asked for: an expiry between
	// the two would not end the new token.
	waitFor(t, func() bool { return e.sim.Stats().TokensIssued >= 1 && calls.Load() > 100 })
	for i := range expiries {
		e.sim.ExpireTokens()
		want := int64(i + 2)
		waitFor(t, func() bool { return e.sim.Stats().TokensIssued >= want })
		before := calls.Load()
		waitFor(t, func() bool { return calls.Load() > before+200 })
	}
	cancel()
	wg.Wait()
	st := e.sim.Stats()
	if st.AuthCalls != expiries+1 {
		t.Errorf("auth_calls = %d, want %d (first token + one per expiry)", st.AuthCalls, expiries+1)
	}
	if failures.Load() != 0 {
		t.Errorf("%d of %d calls failed; first: %v", failures.Load(), calls.Load(), errSeen)
	}
	t.Logf("%d calls, %d expired answers, %d auth calls", calls.Load(), st.ExpiredResponses, st.AuthCalls)
}

// TestLockHolderNeverReturns: a lock left by a dead holder runs out, then
// another replica refreshes once.
func TestLockHolderNeverReturns(t *testing.T) {
	e := setup(t, simulator.Config{})
	const lockTTL = 600 * time.Millisecond
	s, _ := e.replica(t, "survivor", func(c *token.Config) { c.AuthTimeout = 500 * time.Millisecond; c.LockTTL = lockTTL })
	// The dead holder: takes the lock and never comes back.
	if _, err := redislock.New(e.redis.Client(t)).Obtain(t.Context(), "mcpjobs:token:lock", lockTTL, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := s.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < lockTTL/2 {
		t.Errorf("refreshed after %v, while the dead holder's lock had %v to run", d, lockTTL)
	}
	if n := e.sim.Stats().AuthCalls; n != 1 {
		t.Errorf("auth_calls = %d, want 1", n)
	}
	if s.Stats().LockWaits != 1 {
		t.Errorf("lock waits = %d, want 1", s.Stats().LockWaits)
	}
}

// slowAuth ignores its deadline and answers after a delay, like a holder
// whose process stalled past its lock's TTL.
type slowAuth struct {
	inner   token.Authenticator
	delay   time.Duration
	started chan struct{}
}

func (a *slowAuth) Authenticate(ctx context.Context) (intranet.Token, error) {
	close(a.started)
	time.Sleep(a.delay)
	return a.inner.Authenticate(context.WithoutCancel(ctx))
}

// TestLateWriteRefused: a holder whose lock ran out during a slow auth call
// cannot overwrite the newer token.
func TestLateWriteRefused(t *testing.T) {
	e := setup(t, simulator.Config{})
	slow := &slowAuth{inner: e.client(t, ""), delay: 800 * time.Millisecond, started: make(chan struct{})}
	stalled, _ := e.replica(t, "stalled", func(c *token.Config) {
		c.Auth = slow
		c.AuthTimeout, c.LockTTL = 100*time.Millisecond, 200*time.Millisecond
	})
	healthy, _ := e.replica(t, "healthy", func(c *token.Config) { c.AuthTimeout, c.LockTTL = 100*time.Millisecond, 200*time.Millisecond })

	done := make(chan error, 1)
	go func() { _, err := stalled.Token(context.Background()); done <- err }()
	<-slow.started
	time.Sleep(300 * time.Millisecond) // the stalled holder's lock runs out
	tok, err := healthy.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("stalled replica: %v", err)
	}
	if stalled.Stats().WritesRefused != 1 {
		t.Errorf("writes refused = %d, want 1", stalled.Stats().WritesRefused)
	}
	st, err := token.ReadStatus(t.Context(), e.redis.Client(t), "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Generation != 1 || st.RefreshedBy != "healthy" || st.Fingerprint != intranet.Fingerprint(tok.Value) {
		t.Errorf("record = %+v; want generation 1 written by healthy", st)
	}
}

func TestAuthDownThenUp(t *testing.T) {
	e := setup(t, simulator.Config{})
	s, _ := e.replica(t, "r", nil)
	if err := e.sim.SetFaults(simulator.Faults{AuthDown: true}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Token(t.Context())
	if err == nil {
		t.Fatal("got a token while auth is down")
	}
	// During the cooldown, callers do not reach the auth endpoint.
	for range 20 {
		if _, err := s.Token(t.Context()); !errors.Is(err, token.ErrAuthUnavailable) {
			t.Fatalf("error during cooldown = %v, want ErrAuthUnavailable", err)
		}
	}
	if n := e.sim.Stats().AuthCalls; n != 1 {
		t.Errorf("auth_calls during the cooldown = %d, want 1", n)
	}
	if err := e.sim.SetFaults(simulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := s.Token(t.Context()); return err == nil })
	if s.Stats().RefreshFailures < 1 || s.Stats().Refreshes != 1 {
		t.Errorf("stats = %+v", s.Stats())
	}
}

func TestWrongCredentials(t *testing.T) {
	e := setup(t, simulator.Config{})
	const password = "not-the-password"
	c := e.client(t, password)
	s, err := token.New(token.Config{Redis: e.redis.Client(t), Auth: c, InvalidCredentialsCooldown: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Token(t.Context())
	if !errors.Is(err, intranet.ErrInvalidCredentials) || strings.Contains(err.Error(), password) {
		t.Fatalf("error = %v", err)
	}
	st, err := token.ReadStatus(t.Context(), e.redis.Client(t), "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d, _ := time.ParseDuration(st.Cooldown)
	if d < 50*time.Second || strings.Contains(st.CooldownReason, password) {
		t.Errorf("cooldown %q (%s); want about a minute, without the password", st.Cooldown, st.CooldownReason)
	}
}

func TestRefreshAheadOfExpiry(t *testing.T) {
	e := setup(t, simulator.Config{TokenTTL: 2 * time.Second})
	s, _ := e.replica(t, "r", func(c *token.Config) { c.Margin = 1500 * time.Millisecond })
	first, err := s.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond) // now within the margin
	second, err := s.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if first.Value == second.Value || e.sim.Stats().AuthCalls != 2 || e.sim.Stats().ExpiredResponses != 0 {
		t.Errorf("no refresh ahead of expiry: stats %+v", e.sim.Stats())
	}
}

func TestStatusHoldsNoSecret(t *testing.T) {
	e := setup(t, simulator.Config{})
	s, _ := e.replica(t, "replica-a", nil)
	tok, err := s.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st, err := token.ReadStatus(t.Context(), e.redis.Client(t), "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	if strings.Contains(string(b), tok.Value) || st.Generation != 1 || st.RefreshedBy != "replica-a" || st.ExpiresAt == nil {
		t.Errorf("status = %s", b)
	}
	if fmt.Sprint(tok) == tok.Value || fmt.Sprintf("%+v", st) == "" {
		t.Error("a token prints in clear")
	}
}

func TestConfigErrors(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	for _, cfg := range []token.Config{
		{Auth: &slowAuth{}},
		{Redis: rdb},
		{Redis: rdb, Auth: &slowAuth{}, AuthTimeout: time.Second, LockTTL: time.Second},
	} {
		if _, err := token.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted a bad config", cfg)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRefusedTokenIsNotHandedOutDuringOutage: once the platform refused a
// token and its refresh failed, callers get the outage error instead of
// the dead token, so they do not call the platform in vain.
func TestRefusedTokenIsNotHandedOutDuringOutage(t *testing.T) {
	e := setup(t, simulator.Config{})
	s, _ := e.replica(t, "r", func(c *token.Config) { c.CooldownBase, c.CooldownMax = time.Minute, time.Minute })
	tok, err := s.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetFaults(simulator.Faults{AuthDown: true}); err != nil {
		t.Fatal(err)
	}
	e.sim.ExpireTokens()
	if _, err := s.Refresh(t.Context(), tok); err == nil {
		t.Fatal("refresh succeeded while auth is down")
	}
	if _, err := s.Token(t.Context()); !errors.Is(err, token.ErrAuthUnavailable) {
		t.Errorf("Token after a refused token and a failed refresh: %v, want ErrAuthUnavailable", err)
	}
}
