package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/internal/testwait"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/worker"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// stack is a worker running against the simulator on a real Redis.
type stack struct {
	redis  *redistest.Server
	rdb    *redis.Client
	jobs   *store.Client
	sim    *simulator.Simulator
	simURL string
	logs   *lockedWriter
}

func setup(t *testing.T) *stack { t.Helper(); return setupWith(t, simulator.Config{}) }

func setupWith(t *testing.T, simCfg simulator.Config) *stack {
	t.Helper()
	return setupTuned(t, simCfg, nil)
}

// stackConfig is what setupTuned builds a stack from; tune may change it.
type stackConfig struct {
	Intranet intranet.Config
	Worker   worker.Config
	Store    store.Options
}

// setupTuned is setupWith whose platform client, worker and job store
// settings tune may change (nil: the defaults of these tests).
func setupTuned(t *testing.T, simCfg simulator.Config, tune func(*stackConfig)) *stack {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	sim, err := simulator.New(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	logs := &lockedWriter{b: &strings.Builder{}}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := stackConfig{
		Intranet: intranet.Config{BaseURL: hs.URL, Username: simulator.DefaultUsername, Password: simulator.DefaultPassword, Logger: logger},
		Worker: worker.Config{
			Concurrency:          8,
			Retry:                worker.RetryPolicy{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond, AuthWait: 100 * time.Millisecond},
			QueueCheckInterval:   20 * time.Millisecond,
			DelayedCheckInterval: 50 * time.Millisecond,
			ShutdownTimeout:      2 * time.Second,
			Logger:               logger,
		},
		Store: store.Options{RecheckInterval: 200 * time.Millisecond},
	}
	if tune != nil {
		tune(&cfg)
	}
	client, err := intranet.New(cfg.Intranet)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Worker.Client = client
	w, err := worker.New(rdb, cfg.Worker)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	jc := store.NewClient(rdb, cfg.Store)
	t.Cleanup(func() {
		cancel()
		<-done
		_ = jc.Close()
	})
	return &stack{redis: srv, rdb: rdb, jobs: jc, sim: sim, simURL: hs.URL, logs: logs}
}

// run enqueues p as alice and waits for it to end.
func (s *stack) run(t *testing.T, p jobs.Payload, opts ...store.EnqueueOption) *jobs.View {
	t.Helper()
	ctx := t.Context()
	v, err := s.jobs.Enqueue(ctx, "alice", p, opts...)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	v, err = s.jobs.Wait(ctx, "alice", v.JobID, 20*time.Second, nil)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	if !v.State.Final() {
		t.Fatalf("job %s still %s after 20s (error %+v)", v.JobID, v.State, v.Error)
	}
	return v
}

var beijing = jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{116.0, 39.8, 116.1, 39.9}}

func TestAspectCompletes(t *testing.T) {
	s := setup(t)
	v := s.run(t, beijing)
	if v.State != jobs.StateCompleted {
		t.Fatalf("state = %s, error %+v", v.State, v.Error)
	}
	var data simulator.AspectResult
	if err := json.Unmarshal(v.Result.Data, &data); err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range data.Histogram {
		sum += f
	}
	if math.Abs(sum-1) > 1e-9 || data.CellCount == 0 || data.ScaleM != 30 {
		t.Errorf("histogram sums to %v, cells %d, scale %v", sum, data.CellCount, data.ScaleM)
	}
	if v.Result.Attempts != 1 || v.Attempts != 1 {
		t.Errorf("attempts = %d/%d, want 1", v.Result.Attempts, v.Attempts)
	}
	if st := s.sim.Stats(); st.AuthCalls != 1 || st.Calls["aspect"] != 1 {
		t.Errorf("sim stats = %+v", st)
	}
}

func TestPermanentErrorFailsAtOnce(t *testing.T) {
	s := setup(t)
	// 2 degrees by 2 degrees at 1 m is far more than 4,000,000 cells.
	v := s.run(t, jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{100, 30, 102, 32}, ScaleM: 1})
	if v.State != jobs.StateFailed {
		t.Fatalf("state = %s", v.State)
	}
	if v.Error == nil || v.Error.Code != 40001 || v.Error.Class != "permanent" || !strings.Contains(v.Error.Message, "too large") {
		t.Errorf("error = %+v", v.Error)
	}
	if v.Attempts != 1 || s.sim.Stats().Calls["aspect"] != 1 {
		t.Errorf("attempts = %d, aspect calls = %d; a permanent error must not retry", v.Attempts, s.sim.Stats().Calls["aspect"])
	}
}

func TestExpiredSharedTokenIsRefreshedAndCallRepeated(t *testing.T) {
	s := setup(t)
	if v := s.run(t, beijing); v.State != jobs.StateCompleted {
		t.Fatalf("first job: %s", v.State)
	}
	s.sim.ExpireTokens()
	v := s.run(t, beijing)
	if v.State != jobs.StateCompleted || v.Attempts != 1 {
		t.Fatalf("after expiry: state %s attempts %d error %+v", v.State, v.Attempts, v.Error)
	}
	st := s.sim.Stats()
	if st.AuthCalls != 2 || st.ExpiredResponses != 1 {
		t.Errorf("auth_calls = %d (want 2), expired_responses = %d (want 1)", st.AuthCalls, st.ExpiredResponses)
	}
}

func TestTransientFaultsAreRetried(t *testing.T) {
	s := setup(t)
	if err := s.sim.SetFaults(simulator.Faults{HTTP5xx: 1}); err != nil {
		t.Fatal(err)
	}
	v, err := s.jobs.Enqueue(t.Context(), "alice", beijing)
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 30*time.Second, "a second attempt", func() bool {
		got, err := s.jobs.Get(t.Context(), "alice", v.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == jobs.StateFailed {
			t.Fatalf("a transient fault failed the job: %+v", got.Error)
		}
		return got.Attempts >= 2
	})
	if err := s.sim.SetFaults(simulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.jobs.Wait(t.Context(), "alice", v.JobID, 30*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != jobs.StateCompleted || got.Attempts < 2 {
		t.Fatalf("state %s attempts %d, want completed after retries", got.State, got.Attempts)
	}
}

func TestCallerToken(t *testing.T) {
	s := setup(t)
	tok := authenticate(t, s.simURL)

	v := s.run(t, beijing, store.WithCredential(tok))
	if v.State != jobs.StateCompleted {
		t.Fatalf("with a valid caller token: %s %+v", v.State, v.Error)
	}
	s.sim.ExpireTokens()
	v = s.run(t, beijing, store.WithCredential(tok))
	if v.State != jobs.StateFailed || v.Error == nil || !strings.HasPrefix(v.Error.Message, "the platform refused the auth_token you gave") {
		t.Fatalf("with an expired caller token: %s %+v", v.State, v.Error)
	}
	if n := s.sim.Stats().AuthCalls; n != 1 {
		t.Errorf("auth_calls = %d; a caller's token must never be refreshed", n)
	}
	// The token is gone from Redis once the job ended, and never logged.
	keys, err := s.rdb.Keys(t.Context(), "*credential*").Result()
	if err != nil || len(keys) != 0 {
		t.Errorf("credential keys left: %v %v", keys, err)
	}
	if strings.Contains(s.logs.String(), tok) {
		t.Error("the caller's token appears in the logs")
	}
	assertNotInRedis(t, s.rdb, tok)
}

// authenticate gets a token from the simulator as the service account.
func authenticate(t *testing.T, simURL string) string {
	t.Helper()
	c, err := intranet.New(intranet.Config{BaseURL: simURL, Username: simulator.DefaultUsername, Password: simulator.DefaultPassword})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.Authenticate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return tok.Value
}

// assertNotInRedis fails when secret is stored in any Redis value.
func assertNotInRedis(t *testing.T, rdb *redis.Client, secret string) {
	t.Helper()
	ctx := t.Context()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		var values []string
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			values = []string{rdb.Get(ctx, k).Val()}
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				values = append(values, f, v)
			}
		case "list":
			values = rdb.LRange(ctx, k, 0, -1).Val()
		case "set":
			values = rdb.SMembers(ctx, k).Val()
		case "zset":
			values = rdb.ZRange(ctx, k, 0, -1).Val()
		case "none": // gone since KEYS
		default:
			t.Fatalf("key %s has type %s that this check does not read", k, typ)
		}
		for _, v := range values {
			if strings.Contains(v, secret) {
				t.Errorf("secret found in Redis key %s", k)
			}
		}
	}
}

// TestAuthOutageUsesNoRetries: while the auth endpoint is down, a job
// waits without using up its retries, and completes once auth is back.
func TestAuthOutageUsesNoRetries(t *testing.T) {
	s := setup(t)
	if err := s.sim.SetFaults(simulator.Faults{AuthDown: true}); err != nil {
		t.Fatal(err)
	}
	outage := time.Now()
	v, err := s.jobs.Enqueue(t.Context(), "alice", beijing)
	if err != nil {
		t.Fatal(err)
	}
	// Several attempts fail for want of a token (the test's AuthWait is
	// 100ms); each is logged as its job's first attempt.
	const failedAttempts = 4
	testwait.Until(t, 30*time.Second, fmt.Sprintf("%d failed attempts during the auth outage", failedAttempts), func() bool {
		return strings.Count(s.logs.String(), "job attempt failed") >= failedAttempts
	})
	for line := range strings.Lines(s.logs.String()) {
		if strings.Contains(line, "job attempt failed") && !strings.Contains(line, " attempt=1 ") {
			t.Errorf("a failed attempt used up a retry: %s", line)
		}
	}
	// An active job counts the attempt it is in; between attempts the
	// count is that of the attempts used up, which must still be 0.
	var got *jobs.View
	testwait.Until(t, 30*time.Second, "the job to be between attempts", func() bool {
		got, err = s.jobs.Get(t.Context(), "alice", v.JobID)
		if err != nil {
			t.Fatal(err)
		}
		return got.State != jobs.StateActive
	})
	if got.State.Final() || got.Attempts != 0 {
		t.Fatalf("during the outage: state %s, attempts counted %d (want 0)", got.State, got.Attempts)
	}
	if err := s.sim.SetFaults(simulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	down := time.Since(outage)
	got, err = s.jobs.Wait(t.Context(), "alice", v.JobID, 30*time.Second, nil)
	if err != nil || got.State != jobs.StateCompleted {
		t.Fatalf("after the outage: %+v %v", got, err)
	}
	if got.Attempts != 1 {
		t.Errorf("completed after %d attempts counted, want 1", got.Attempts)
	}
	// Each failed auth call starts a shared cooldown of at least
	// token.Config.CooldownBase (default 1s), so the outage allowed at most
	// one failed call per second of it, plus the first; then one success.
	const cooldownBase = time.Second
	if n, most := s.sim.Stats().AuthCalls, int64(2+down/cooldownBase); n > most {
		t.Errorf("auth_calls = %d during a %v outage, want at most %d; the cooldown should limit them", n, down, most)
	}
}

// A cancellation that misses the run it is for (asynq's is a pub/sub
// message: lost while the worker's subscription reconnects, or when it
// comes before the worker has registered a run it just took) is sent again
// until the run ends, so cancel_job stops the job all the same.
func TestCancelReachesARunWhoseFirstCancellationIsLost(t *testing.T) {
	s := setup(t)
	s.sim.SetLatency(30*time.Second, 0)
	ctx := t.Context()
	v, err := s.jobs.Enqueue(ctx, "alice", beijing)
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "the job runs", func() bool {
		got, err := s.jobs.Get(ctx, "alice", v.JobID)
		return err == nil && got.State == jobs.StateActive
	})
	// Drop every pub/sub connection, back to back, from before the cancel
	// until a little after its first cancellation was published: that one
	// reaches no worker.
	published := publishes(t, s.rdb)
	killing := make(chan struct{})
	killed := make(chan struct{})
	go func() {
		defer close(killing)
		var stop time.Time
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
			_ = s.rdb.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err()
			select {
			case <-killed:
			default:
				close(killed)
			}
			if stop.IsZero() && publishes(t, s.rdb) > published {
				stop = time.Now().Add(50 * time.Millisecond)
			}
			if !stop.IsZero() && time.Now().After(stop) {
				return
			}
		}
	}()
	<-killed
	start := time.Now()
	if _, err := s.jobs.Cancel(ctx, "alice", v.JobID); err != nil {
		t.Fatal(err)
	}
	<-killing
	got, err := s.jobs.Wait(ctx, "alice", v.JobID, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != jobs.StateCancelled {
		t.Fatalf("job %s is %s %v after cancel_job; want cancelled", v.JobID, got.State, got.Error)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the cancellation took %v to stop the run", took)
	}
}

// publishes is how many PUBLISH commands Redis has run.
func publishes(t *testing.T, rdb *redis.Client) int64 {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Error(err)
		return 0
	}
	_, rest, ok := strings.Cut(info, "cmdstat_publish:calls=")
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
	return n
}
