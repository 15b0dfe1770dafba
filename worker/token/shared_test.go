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
	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/internal/testwait"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
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
	return e.replicaWith(t, name, "", edit)
}

// replicaWith is replica with its own password ("" for the right one).
func (e *env) replicaWith(t *testing.T, name, password string, edit func(*token.Config)) (*token.Shared, *intranet.Client) {
	t.Helper()
	c := e.client(t, password)
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

// moves tracks the callers of a storm: epoch counts the events so far (an
// expiry, a data loss), and last[i] is the epoch in which caller i last
// started a call that succeeded. Waiting until every caller has moved past
// an event before the next one means that on a slow machine no caller's
// repeated call meets two expiries (which would fail it, and is not what
// these tests are about).
type moves struct {
	epoch atomic.Int64
	last  []atomic.Int64
}

func newMoves(callers int) *moves {
	m := &moves{last: make([]atomic.Int64, callers)}
	for i := range m.last {
		m.last[i].Store(-1)
	}
	return m
}

// start is the epoch to pass to done when the call ends.
func (m *moves) start() int64 { return m.epoch.Load() }

// done records the end of caller i's call started in epoch started.
func (m *moves) done(i int, started int64, err error) {
	if err == nil {
		m.last[i].Store(started)
	}
}

// next begins a new epoch: call it just before the event.
func (m *moves) next() { m.epoch.Add(1) }

// allMoved reports whether every caller succeeded since the last event.
func (m *moves) allMoved() bool {
	for i := range m.last {
		if m.last[i].Load() < m.epoch.Load() {
			return false
		}
	}
	return true
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
	m := newMoves(replicas * callers)
	for r := range replicas {
		s, c := e.replica(t, fmt.Sprintf("replica-%d", r), nil)
		for k := range callers {
			i := r*callers + k
			wg.Go(func() {
				for ctx.Err() == nil {
					started := m.start()
					err := callOnce(ctx, s, c)
					if err != nil && ctx.Err() == nil {
						failures.Add(1)
						firstErr.Do(func() { errSeen = err })
					}
					m.done(i, started, err)
					calls.Add(1)
				}
			})
		}
	}
	// Wait for tokens to be issued, not only asked for: an expiry between
	// the two would not end the new token.
	waitFor(t, func() bool { return e.sim.Stats().TokensIssued >= 1 && m.allMoved() })
	for i := range expiries {
		m.next()
		e.sim.ExpireTokens()
		want := int64(i + 2)
		waitFor(t, func() bool { return e.sim.Stats().TokensIssued >= want })
		waitFor(t, m.allMoved)
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

// gatedAuth asks the platform only once release is closed, ignoring its
// deadline, like a holder whose process stalled past its lock's TTL.
type gatedAuth struct {
	inner   token.Authenticator
	started chan struct{}
	release chan struct{}
}

func (a *gatedAuth) Authenticate(ctx context.Context) (intranet.Token, error) {
	close(a.started)
	<-a.release
	return a.inner.Authenticate(context.WithoutCancel(ctx))
}

// TestLateWriteKeepsLiveToken: a holder whose lock ran out during a slow
// auth call got the token the platform issued last, the only live one: the
// record ends up holding it, and the callers of the replica whose token it
// replaced recover without another auth call.
func TestLateWriteKeepsLiveToken(t *testing.T) {
	e := setup(t, simulator.Config{})
	rdb := e.redis.Client(t)
	gate := &gatedAuth{inner: e.client(t, ""), started: make(chan struct{}), release: make(chan struct{})}
	stalled, stalledClient := e.replica(t, "stalled", func(c *token.Config) {
		c.Auth = gate
		c.AuthTimeout, c.LockTTL = 100*time.Millisecond, 200*time.Millisecond
	})
	healthy, healthyClient := e.replica(t, "healthy", func(c *token.Config) { c.AuthTimeout, c.LockTTL = 100*time.Millisecond, 200*time.Millisecond })

	type result struct {
		tok intranet.Token
		err error
	}
	done := make(chan result, 1)
	go func() { tok, err := stalled.Token(context.Background()); done <- result{tok, err} }()
	<-gate.started
	// The stalled holder's lock runs out.
	waitFor(t, func() bool { return rdb.Exists(t.Context(), "mcpjobs:token:lock").Val() == 0 })
	early, err := healthy.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	close(gate.release) // the stalled holder's auth call now reaches the platform
	r := <-done
	if r.err != nil {
		t.Fatalf("stalled replica: %v", r.err)
	}
	if r.tok.Value == early.Value {
		t.Fatal("both replicas got the same token")
	}
	if n := stalled.Stats().WritesRefused + healthy.Stats().WritesRefused; n != 0 {
		t.Errorf("writes refused = %d, want 0 (the later token is written over the earlier)", n)
	}
	st, err := token.ReadStatus(t.Context(), rdb, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Fingerprint != intranet.Fingerprint(r.tok.Value) || st.RefreshedBy != "stalled" || st.Generation != 2 || st.Seq != 2 {
		t.Errorf("record = %+v; want the stalled replica's token (issued last), generation 2", st)
	}
	// The platform agrees: the healthy replica's token is dead.
	if _, err := healthyClient.Call(t.Context(), intranet.OpDAG, early.Value, nil); !errors.Is(err, intranet.ErrTokenExpired) {
		t.Fatalf("the earlier token still works (%v): the test did not stall the holder", err)
	}
	auth := e.sim.Stats().AuthCalls
	for range 5 {
		if err := callOnce(t.Context(), healthy, healthyClient); err != nil {
			t.Errorf("healthy replica: %v", err)
		}
		if err := callOnce(t.Context(), stalled, stalledClient); err != nil {
			t.Errorf("stalled replica: %v", err)
		}
	}
	if tok, err := healthy.Refresh(t.Context(), early); err != nil || tok.Value != r.tok.Value {
		t.Errorf("Refresh of the replaced token = %v, %v; want the live one", tok, err)
	}
	if n := e.sim.Stats().AuthCalls; n != auth || n != 2 {
		t.Errorf("auth calls = %d (%d before recovering), want 2", n, auth)
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
	if !errors.Is(err, intranet.ErrInvalidCredentials) || !errors.Is(err, token.ErrCredentialsRefused) ||
		errors.Is(err, token.ErrAuthUnavailable) || strings.Contains(err.Error(), password) {
		t.Fatalf("error = %v", err)
	}
	if !s.CredentialsRefused() || s.Stats().InvalidCredentials != 1 {
		t.Errorf("CredentialsRefused = %v, stats %+v", s.CredentialsRefused(), s.Stats())
	}
	// During its cooldown the refusal is still told apart from an outage,
	// without calling the platform.
	for range 5 {
		_, err = s.Token(t.Context())
		if !errors.Is(err, intranet.ErrInvalidCredentials) || errors.Is(err, token.ErrAuthUnavailable) {
			t.Fatalf("error during the cooldown = %v", err)
		}
	}
	if n := e.sim.Stats().AuthCalls; n != 1 {
		t.Errorf("auth calls = %d, want 1", n)
	}
	st, err := token.ReadStatus(t.Context(), e.redis.Client(t), "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Cooldowns) != 1 {
		t.Fatalf("cooldowns = %+v, want one", st.Cooldowns)
	}
	cd := st.Cooldowns[0]
	d, _ := time.ParseDuration(cd.Remaining)
	if d < 50*time.Second || strings.Contains(cd.Reason, password) || cd.Kind != "invalid_credentials" ||
		cd.Credentials != c.CredentialsFingerprint() {
		t.Errorf("cooldown %+v; want about a minute for %s, without the password", cd, c.CredentialsFingerprint())
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
		{Auth: &gatedAuth{}},
		{Redis: rdb},
		{Redis: rdb, Auth: &gatedAuth{}, AuthTimeout: time.Second, LockTTL: time.Second},
	} {
		if _, err := token.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted a bad config", cfg)
		}
	}
}

// waitFor waits for cond, at most 20 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testwait.Until(t, 20*time.Second, "the condition", cond)
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
