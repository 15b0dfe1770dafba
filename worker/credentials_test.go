package worker_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/internal/testwait"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/worker"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// fleet is several worker replicas, each with its own Redis connection and
// platform client, sharing one Redis and one simulator.
type fleet struct {
	redis *redistest.Server
	sim   *simulator.Simulator
	url   string
	jobs  *store.Client
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	sim, err := simulator.New(simulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	srv := redistest.Start(t)
	jc := store.NewClient(srv.Client(t), store.Options{RecheckInterval: 100 * time.Millisecond})
	t.Cleanup(func() { _ = jc.Close() })
	return &fleet{redis: srv, sim: sim, url: hs.URL, jobs: jc}
}

// replica starts a worker that authenticates with password; it stops when
// stop is called or the test ends.
func (f *fleet) replica(t *testing.T, password string) (w *worker.Worker, stop func()) {
	t.Helper()
	client, err := intranet.New(intranet.Config{BaseURL: f.url, Username: simulator.DefaultUsername, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	w, err = worker.New(f.redis.Client(t), worker.Config{
		Client:               client,
		Concurrency:          8,
		Retry:                worker.RetryPolicy{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond, AuthWait: 100 * time.Millisecond},
		QueueCheckInterval:   20 * time.Millisecond,
		DelayedCheckInterval: 50 * time.Millisecond,
		ShutdownTimeout:      2 * time.Second,
		ParkBackoff:          worker.ParkBackoff{Min: 100 * time.Millisecond, Max: 400 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return w, stop
}

// small is an aspect job that costs the simulator little CPU.
var small = jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{116.0, 39.8, 116.01, 39.81}}

// TestBadCredentialsReplicaDelaysNoJob: a replica whose password is wrong
// meets the token's expiry first. It parks (not ready, takes no jobs) and
// hands its jobs back without using their retries; the two good replicas
// refresh at once and run every job within a few seconds.
func TestBadCredentialsReplicaDelaysNoJob(t *testing.T) {
	f := newFleet(t)
	ctx := t.Context()
	// A token exists, then the platform ends it: the next call meets 40003.
	_, stopFirst := f.replica(t, simulator.DefaultPassword)
	v, err := f.jobs.Enqueue(ctx, "alice", beijing)
	if err != nil {
		t.Fatal(err)
	}
	if v, err = f.jobs.Wait(ctx, "alice", v.JobID, 20*time.Second, nil); err != nil || v.State != jobs.StateCompleted {
		t.Fatalf("first job: %+v %v", v, err)
	}
	stopFirst()
	f.sim.ExpireTokens()

	// The bad replica meets the expiry alone.
	bad, _ := f.replica(t, "not-the-password")
	const n = 100
	ids := make([]string, n)
	for i := range ids {
		v, err := f.jobs.Enqueue(ctx, "alice", small)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = v.JobID
	}
	testwait.Until(t, 10*time.Second, "the bad replica to park", func() bool { return errors.Is(bad.Ready(), worker.ErrCredentialsRefused) })
	authBefore := f.sim.Stats().AuthFailures

	// Two good replicas join: every job completes within a few seconds,
	// with one auth call, and no job used up a retry.
	start := time.Now()
	f.replica(t, simulator.DefaultPassword)
	f.replica(t, simulator.DefaultPassword)
	for _, id := range ids {
		v, err := f.jobs.Wait(ctx, "alice", id, 20*time.Second, nil)
		if err != nil || v.State != jobs.StateCompleted {
			t.Fatalf("job %s: %+v %v", id, v, err)
		}
		if v.Attempts != 1 {
			t.Errorf("job %s: attempts %d, want 1 (a handed-back job uses up no retry)", id, v.Attempts)
		}
	}
	took := time.Since(start)
	if took > 5*time.Second {
		t.Errorf("the good replicas took %v to run %d jobs after the bad replica's refusal; want a few seconds", took, n)
	}
	if !errors.Is(bad.Ready(), worker.ErrCredentialsRefused) {
		t.Errorf("bad replica Ready() = %v, want ErrCredentialsRefused", bad.Ready())
	}
	st := f.sim.Stats()
	if good := st.AuthCalls - st.AuthFailures; good != 2 {
		t.Errorf("successful auth calls = %d, want 2 (the first token and one refresh)", good)
	}
	t.Logf("%d jobs in %v after the good replicas joined; auth failures %d before, %d after (the parked replica's checks)", n, took.Round(time.Millisecond), authBefore, st.AuthFailures)
}
