package token_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
	"github.com/mcpjobs/mcpjobs/worker/token"
)

// isRefusal reports whether err is this replica's credentials being
// refused, told apart from an auth outage.
func isRefusal(err error) bool {
	return errors.Is(err, intranet.ErrInvalidCredentials) && errors.Is(err, token.ErrCredentialsRefused) &&
		!errors.Is(err, token.ErrAuthUnavailable)
}

// TestBadReplicaDoesNotStallOthers: a replica with a wrong password meets
// the expiry first; its refusal is its own: the good replicas refresh at
// once with one auth call and none of their calls fails.
func TestBadReplicaDoesNotStallOthers(t *testing.T) {
	e := setup(t, simulator.Config{})
	long := func(c *token.Config) { c.InvalidCredentialsCooldown = time.Minute }
	good1, good1C := e.replica(t, "good-1", long)
	good2, good2C := e.replica(t, "good-2", long)
	bad, badC := e.replicaWith(t, "bad", "not-the-password", long)

	tok, err := good1.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// While the shared token is valid, the bad replica uses it too.
	if btok, err := bad.Token(t.Context()); err != nil || btok.Value != tok.Value {
		t.Fatalf("bad replica's Token = %v, %v; want the shared token", btok, err)
	}
	e.sim.ExpireTokens()
	if _, err := bad.Refresh(t.Context(), tok); !isRefusal(err) {
		t.Fatalf("bad replica's Refresh = %v; want its credentials refused", err)
	}
	if _, err := bad.Refresh(t.Context(), tok); !isRefusal(err) {
		t.Fatalf("bad replica's Refresh during its cooldown = %v; want its credentials refused", err)
	}
	if !bad.CredentialsRefused() || good1.CredentialsRefused() {
		t.Errorf("CredentialsRefused: bad %v, good %v", bad.CredentialsRefused(), good1.CredentialsRefused())
	}
	if n := e.sim.Stats().AuthCalls; n != 2 {
		t.Fatalf("auth calls = %d, want 2 (the first token, the bad replica's refused one)", n)
	}

	// 100 jobs on the good replicas, all meeting the expiry.
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 100 {
		s, c := good1, good1C
		if i%2 == 1 {
			s, c = good2, good2C
		}
		wg.Go(func() {
			if err := callOnce(t.Context(), s, c); err != nil {
				failed.Add(1)
				t.Errorf("good replica: %v", err)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if n := e.sim.Stats().AuthCalls; n != 3 {
		t.Errorf("auth calls = %d, want 3 (one for the good replicas)", n)
	}
	if took > 20*time.Second {
		t.Errorf("100 jobs took %v with the bad replica cooling down for a minute", took)
	}
	st, err := token.ReadStatus(t.Context(), e.redis.Client(t), "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Cooldowns) != 1 || st.Cooldowns[0].Credentials != badC.CredentialsFingerprint() || st.Cooldowns[0].Kind != "invalid_credentials" {
		t.Errorf("cooldowns = %+v; want only the bad credentials' (%s)", st.Cooldowns, badC.CredentialsFingerprint())
	}
	if st.Credentials != good1C.CredentialsFingerprint() || st.Generation != 2 {
		t.Errorf("record = %+v", st)
	}
	t.Logf("100 jobs through an expiry met first by a bad replica: %v", took)
}

// TestForceRefreshWrongCredentials: `mcpjobs token refresh` with a mistyped
// password touches nothing the replicas share.
func TestForceRefreshWrongCredentials(t *testing.T) {
	e := setup(t, simulator.Config{})
	rdb := e.redis.Client(t)
	good, goodC := e.replica(t, "good", func(c *token.Config) { c.InvalidCredentialsCooldown = time.Minute })
	cli, _ := e.replicaWith(t, "mcpjobs-token-cli", "typo", func(c *token.Config) { c.InvalidCredentialsCooldown = time.Minute })
	if _, err := good.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	before, err := token.ReadStatus(t.Context(), rdb, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ForceRefresh(t.Context()); !isRefusal(err) {
		t.Fatalf("ForceRefresh = %v; want the credentials refused", err)
	}
	after, err := token.ReadStatus(t.Context(), rdb, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if after.Fingerprint != before.Fingerprint || after.Generation != before.Generation || after.Seq != before.Seq {
		t.Errorf("record changed: %+v → %+v", before, after)
	}
	for _, c := range after.Cooldowns {
		if c.Credentials == goodC.CredentialsFingerprint() {
			t.Errorf("the good credentials are cooling down: %+v", c)
		}
	}
	// The good replica refreshes at once after an expiry, with one call.
	e.sim.ExpireTokens()
	auth := e.sim.Stats().AuthCalls
	if err := callOnce(t.Context(), good, goodC); err != nil {
		t.Fatalf("good replica after a refused ForceRefresh: %v", err)
	}
	if n := e.sim.Stats().AuthCalls - auth; n != 1 {
		t.Errorf("auth calls for the good replica's refresh = %d, want 1", n)
	}
}

// TestHeal: a replica whose password file is wrong heals when the file is
// rewritten, without a restart and without an auth call to notice.
func TestHeal(t *testing.T) {
	e := setup(t, simulator.Config{})
	file := filepath.Join(t.TempDir(), "password")
	write := func(pw string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("wrong")
	c, err := intranet.New(intranet.Config{BaseURL: e.simURL, Username: simulator.DefaultUsername, PasswordFile: file})
	if err != nil {
		t.Fatal(err)
	}
	const cooldown = 300 * time.Millisecond
	s, _ := e.replica(t, "r", func(cfg *token.Config) { cfg.Auth = c; cfg.InvalidCredentialsCooldown = cooldown })
	if err := s.Heal(t.Context()); err != nil {
		t.Errorf("Heal with nothing refused: %v", err)
	}
	if _, err := s.Token(t.Context()); !isRefusal(err) {
		t.Fatalf("Token = %v; want the credentials refused", err)
	}
	// While the cooldown runs, Heal does not call the platform.
	if err := s.Heal(t.Context()); !isRefusal(err) {
		t.Errorf("Heal during the cooldown = %v", err)
	}
	if n := e.sim.Stats().AuthCalls; n != 1 {
		t.Errorf("auth calls = %d, want 1", n)
	}
	// Once it ran out, Heal with unchanged credentials makes one auth call.
	waitFor(t, func() bool {
		st, err := token.ReadStatus(t.Context(), e.redis.Client(t), "", time.Now())
		return err == nil && len(st.Cooldowns) == 0
	})
	if err := s.Heal(t.Context()); !isRefusal(err) {
		t.Errorf("Heal with the same wrong password = %v", err)
	}
	if n := e.sim.Stats().AuthCalls; n != 2 {
		t.Errorf("auth calls = %d, want 2", n)
	}
	// Fixing the file heals at once, without an auth call.
	write(simulator.DefaultPassword)
	if err := s.Heal(t.Context()); err != nil {
		t.Fatalf("Heal after fixing the file: %v", err)
	}
	if s.CredentialsRefused() || e.sim.Stats().AuthCalls != 2 {
		t.Errorf("after Heal: refused %v, auth calls %d", s.CredentialsRefused(), e.sim.Stats().AuthCalls)
	}
	if _, err := s.Token(t.Context()); err != nil {
		t.Fatalf("Token after healing: %v", err)
	}
	if n := e.sim.Stats().AuthCalls; n != 3 {
		t.Errorf("auth calls = %d, want 3", n)
	}
}

// TestHealThroughAnotherReplica: once a replica with the same credentials
// got a token after the refusal (the account was fixed on the platform),
// Heal returns nil without an auth call.
func TestHealThroughAnotherReplica(t *testing.T) {
	e := setup(t, simulator.Config{})
	const cooldown = 200 * time.Millisecond
	flaky := &flakyAuth{inner: e.client(t, "")}
	flaky.refuse.Store(true)
	a, _ := e.replica(t, "a", func(c *token.Config) { c.Auth = flaky; c.InvalidCredentialsCooldown = cooldown })
	b, _ := e.replica(t, "b", func(c *token.Config) { c.Auth = flaky; c.InvalidCredentialsCooldown = cooldown })
	if _, err := a.Token(t.Context()); !isRefusal(err) {
		t.Fatalf("Token = %v", err)
	}
	// b shares a's credentials, so it shares the refusal's cooldown.
	if _, err := b.Token(t.Context()); !isRefusal(err) || !b.CredentialsRefused() {
		t.Fatalf("b's Token during a's refusal cooldown = %v", err)
	}
	flaky.refuse.Store(false)
	waitFor(t, func() bool { return b.Heal(t.Context()) == nil })
	calls := e.sim.Stats().AuthCalls
	if err := a.Heal(t.Context()); err != nil || a.CredentialsRefused() {
		t.Errorf("a's Heal after b got a token = %v", err)
	}
	if n := e.sim.Stats().AuthCalls; n != calls {
		t.Errorf("a's Heal made %d auth calls, want 0", n-calls)
	}
}

// flakyAuth refuses like a 40101 while refuse is set.
type flakyAuth struct {
	inner  token.Authenticator
	refuse atomic.Bool
}

func (a *flakyAuth) Authenticate(ctx context.Context) (intranet.Token, error) {
	if a.refuse.Load() {
		return intranet.Token{}, &intranet.Error{Op: "auth", Class: intranet.ClassInvalidCredentials, Code: 40101, Message: "invalid credentials"}
	}
	return a.inner.Authenticate(ctx)
}

// TestDataLossHeals: Redis loses everything under a storm of callers, once
// with valid tokens cached and once in the middle of an expiry wave; then
// tokens expire a few times. At most one auth call more than the expiries,
// no failed call once the loss settled, no replica refusing fresh tokens.
func TestDataLossHeals(t *testing.T) {
	const replicas, callers, expiries = 3, 16, 4
	e := setup(t, simulator.Config{})
	rdb := e.redis.Client(t)
	ctx, cancel := context.WithCancel(t.Context())
	var calls, failures, failuresSettled atomic.Int64
	var settled atomic.Bool
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
						if settled.Load() {
							failuresSettled.Add(1)
							firstErr.Do(func() { errSeen = err })
						}
					}
					m.done(i, started, err)
					calls.Add(1)
				}
			})
		}
	}
	// progress waits until every caller has made a call that worked since
	// the last event; events call m.next() first.
	progress := func() { waitFor(t, m.allMoved) }
	issued := func(n int64) {
		waitFor(t, func() bool { return e.sim.Stats().TokensIssued >= n })
	}
	issued(1)
	progress()
	// Data loss with a valid token cached everywhere.
	m.next()
	if err := rdb.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	progress()
	// Data loss in the middle of an expiry wave.
	m.next()
	e.sim.ExpireTokens()
	if err := rdb.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	issued(2)
	progress()
	m.next()
	progress()
	settled.Store(true)
	for i := range expiries {
		m.next()
		e.sim.ExpireTokens()
		issued(int64(i + 3))
		progress()
	}
	cancel()
	wg.Wait()
	st := e.sim.Stats()
	// The first token, one per expiry (expiries + the one in the loss), and
	// at most one more for the loss.
	if want := int64(expiries + 2); st.AuthCalls > want+1 || st.AuthCalls < want {
		t.Errorf("auth_calls = %d, want %d or %d", st.AuthCalls, want, want+1)
	}
	if n := failuresSettled.Load(); n != 0 {
		t.Errorf("%d calls failed after the loss settled; first: %v", n, errSeen)
	}
	t.Logf("%d calls, %d failed during the loss, %d expired answers, %d auth calls",
		calls.Load(), failures.Load(), st.ExpiredResponses, st.AuthCalls)
}

// TestDataLossProbe: a replica that saw several refreshes and a refused
// token during an outage, then Redis lost everything: 8 token reads make at
// most one auth call (the probe made 6).
func TestDataLossProbe(t *testing.T) {
	e := setup(t, simulator.Config{})
	s, c := e.replica(t, "r", func(c *token.Config) { c.CooldownBase, c.CooldownMax = time.Minute, time.Minute })
	other, otherC := e.replica(t, "other", nil)
	for range 5 {
		tok, err := s.Token(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		e.sim.ExpireTokens()
		if _, err := s.Refresh(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	// An outage leaves the newest token refused and its refresh failed.
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
	if err := e.sim.SetFaults(simulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	if err := e.redis.Client(t).FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	auth := e.sim.Stats().AuthCalls
	for i := range 8 {
		r, rc := s, c
		if i%2 == 1 {
			r, rc = other, otherC
		}
		tok, err := r.Token(t.Context())
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if _, err := rc.Call(t.Context(), intranet.OpDAG, tok.Value, map[string]string{"code": "var a = Image('dem_30m')", "language": "javascript"}); err != nil {
			t.Fatalf("read %d: the token does not work: %v", i, err)
		}
	}
	if n := e.sim.Stats().AuthCalls - auth; n > 1 {
		t.Errorf("8 token reads after the loss made %d auth calls, want at most 1", n)
	}
	st, err := token.ReadStatus(t.Context(), e.redis.Client(t), "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Generation != 1 || st.Seq != 1 {
		t.Errorf("record after the loss = %+v; want generation and seq 1", st)
	}
}
