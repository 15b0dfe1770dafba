package worker

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/internal/testwait"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// pickupStack is a running worker whose idle look at every queue comes
// only once a minute: a job it takes sooner was announced by Redis.
type pickupStack struct {
	srv  *redistest.Server
	rdb  *redis.Client
	w    *Worker
	jobs *store.Client
	stop func() time.Duration // shuts the worker down, answers how long it took
}

// startPickup starts a worker on rdb (or, when wrap is set, on wrap(rdb)).
func startPickup(t *testing.T, wrap func(*redis.Client) redis.UniversalClient) *pickupStack {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	sim, err := simulator.New(simulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	client, err := intranet.New(intranet.Config{BaseURL: hs.URL, Username: simulator.DefaultUsername, Password: simulator.DefaultPassword})
	if err != nil {
		t.Fatal(err)
	}
	var conn redis.UniversalClient = rdb
	if wrap != nil {
		conn = wrap(rdb)
	}
	w, err := New(conn, Config{Client: client, IdleCheckInterval: time.Minute, QueueCheckInterval: 20 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	jc := store.NewClient(rdb, store.Options{RecheckInterval: time.Minute})
	var took time.Duration
	stopped := false
	stop := func() time.Duration {
		if !stopped {
			stopped = true
			start := time.Now()
			cancel()
			<-done
			took = time.Since(start)
		}
		return took
	}
	t.Cleanup(func() { stop(); _ = jc.Close() })
	return &pickupStack{srv: srv, rdb: rdb, w: w, jobs: jc, stop: stop}
}

// idle waits until the worker's pickup has waited for work more than n
// times: it is idle, between two looks.
func (s *pickupStack) idle(t *testing.T, n int64) int64 {
	t.Helper()
	var p *pickup
	testwait.Until(t, 5*time.Second, "the worker to wait for work", func() bool {
		p = s.w.pickup.Load()
		return p != nil && p.blocks.Load() > n
	})
	return p.blocks.Load()
}

// quiet waits until the worker waits for work with nothing to wake it
// but its look at every queue, a minute away.
func (s *pickupStack) quiet(t *testing.T) {
	t.Helper()
	testwait.Until(t, 5*time.Second, "the worker to wait for work, with nothing to wake it", func() bool {
		p := s.w.pickup.Load()
		if p == nil || p.waiting.Load() != 1 || len(p.wake) > 0 {
			return false
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		return !p.anyWork() && time.Until(p.nextSweep) > 10*time.Second
	})
}

func (s *pickupStack) listening(t *testing.T) {
	t.Helper()
	testwait.Until(t, 5*time.Second, "the worker to hear Redis's invalidations", func() bool {
		p := s.w.pickup.Load()
		return p != nil && p.listening()
	})
}

var dag = jobs.DAGPayload{Code: "var dem = Image('dem_30m'); Export(dem.aspect(), 'out')", Language: "javascript"}

// TestIdleWorkerTakesJobsAtOnce: a job enqueued while the worker waits for
// work ends within milliseconds, not a polling interval (asynq's 100 ms
// check would put the median near 50 ms; with the 1-minute look of this
// worker, a missed announcement would take a minute).
func TestIdleWorkerTakesJobsAtOnce(t *testing.T) {
	s := startPickup(t, nil)
	s.listening(t)
	ctx := t.Context()
	var took []time.Duration
	blocks := int64(0)
	for range 30 {
		blocks = s.idle(t, blocks)
		start := time.Now()
		v, err := s.jobs.Enqueue(ctx, "alice", dag)
		if err != nil {
			t.Fatal(err)
		}
		v, err = s.jobs.Wait(ctx, "alice", v.JobID, 5*time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v.State != jobs.StateCompleted {
			t.Fatalf("job %s is %s 5s after its enqueue (error %+v), want completed", v.JobID, v.State, v.Error)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	if median := took[len(took)/2]; median > 25*time.Millisecond {
		t.Errorf("enqueue to completed: median %v (all: %v); want a few ms", median, took)
	}
}

// TestDueScheduledJobIsTaken: a job that the forwarder moves from the
// scheduled set to its queue wakes the idle worker.
func TestDueScheduledJobIsTaken(t *testing.T) {
	s := startPickup(t, nil)
	s.listening(t)
	s.idle(t, 0)
	body, err := json.Marshal(dag)
	if err != nil {
		t.Fatal(err)
	}
	c := asynq.NewClientFromRedisClient(s.rdb)
	defer c.Close()
	info, err := c.EnqueueContext(t.Context(), asynq.NewTaskWithHeaders(jobs.TypeDAG, body, map[string]string{"owner": "alice"}),
		asynq.Queue(jobs.QueueInteractive), asynq.ProcessIn(300*time.Millisecond), asynq.Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	start := time.Now()
	testwait.Until(t, 5*time.Second, "the scheduled job to complete", func() bool {
		ti, err := insp.GetTaskInfo(info.Queue, info.ID)
		return err == nil && ti.State == asynq.TaskStateCompleted
	})
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Errorf("the job scheduled in 300ms completed after %v", took)
	}
}

// TestShutdownDoesNotWaitForWork: an idle worker (waiting up to a minute
// for work) shuts down at once.
func TestShutdownDoesNotWaitForWork(t *testing.T) {
	s := startPickup(t, nil)
	s.listening(t)
	s.quiet(t)
	if took := s.stop(); took > 5*time.Second {
		t.Errorf("shutdown took %v; want it not to wait for the idle look (1 minute)", took)
	}
}

// TestIdleWorkerCommandRate: an idle worker costs Redis a few commands a
// second (asynq's own upkeep and a look a second at each queue's length);
// asynq polling every 100 ms costs about 100.
func TestIdleWorkerCommandRate(t *testing.T) {
	s := startPickup(t, nil)
	if s.srv.PID() == 0 {
		t.Skip("needs a Redis of its own (INFO commandstats covers the whole server)")
	}
	s.listening(t)
	s.idle(t, 0)
	ctx := t.Context()
	before := commandCalls(t, ctx, s.rdb)
	start := time.Now()
	time.Sleep(2 * time.Second) // the window measured, not a wait for a condition
	after := commandCalls(t, ctx, s.rdb)
	secs := time.Since(start).Seconds()
	total := int64(0)
	for name, n := range after {
		if name != "info" {
			total += n - before[name]
		}
	}
	if rate := float64(total) / secs; rate > 50 {
		t.Errorf("an idle worker made %.0f Redis commands a second; want under 50 (before: %v, after: %v)", rate, before, after)
	}
	if rate := float64(after["rpoplpush"]-before["rpoplpush"]) / secs; rate > 5 {
		t.Errorf("an idle worker ran the dequeue script %.1f times a second", rate)
	}
}

func commandCalls(t *testing.T, ctx context.Context, rdb *redis.Client) map[string]int64 {
	t.Helper()
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if name, ok2 := strings.CutPrefix(name, "cmdstat_"); ok && ok2 {
			for f := range strings.SplitSeq(rest, ",") {
				if v, ok := strings.CutPrefix(f, "calls="); ok {
					out[name], _ = strconv.ParseInt(v, 10, 64)
				}
			}
		}
	}
	return out
}

// otherClient is a Redis client that is not a *redis.Client, as a cluster
// client is not: the worker cannot subscribe to invalidations with it.
type otherClient struct{ *redis.Client }

// TestPollsWithoutInvalidations: without Redis's invalidations the worker
// looks every QueueCheckInterval and still takes every job.
func TestPollsWithoutInvalidations(t *testing.T) {
	s := startPickup(t, func(c *redis.Client) redis.UniversalClient { return otherClient{c} })
	ctx := t.Context()
	for range 3 {
		v, err := s.jobs.Enqueue(ctx, "alice", dag)
		if err != nil {
			t.Fatal(err)
		}
		if v, err = s.jobs.Wait(ctx, "alice", v.JobID, 5*time.Second, nil); err != nil || v.State != jobs.StateCompleted {
			t.Fatalf("job: %+v, %v; want completed", v, err)
		}
	}
	if s.w.pickup.Load().listening() {
		t.Error("the pickup says it hears invalidations through a client that cannot subscribe to them")
	}
}

// TestInvalidationsComeBack: after the subscription's connection is
// killed, the pickup polls, then hears invalidations again.
func TestInvalidationsComeBack(t *testing.T) {
	s := startPickup(t, nil)
	s.listening(t)
	ctx := t.Context()
	if err := s.rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, "the pickup to notice", func() bool { return !s.w.pickup.Load().listening() })
	s.listening(t)
	s.quiet(t) // only an invalidation can wake it now
	v, err := s.jobs.Enqueue(ctx, "alice", dag)
	if err != nil {
		t.Fatal(err)
	}
	if v, err = s.jobs.Wait(ctx, "alice", v.JobID, 5*time.Second, nil); err != nil || v.State != jobs.StateCompleted {
		t.Fatalf("job after the reconnect: %+v, %v; want completed", v, err)
	}
}

func TestDequeueQueue(t *testing.T) {
	for _, c := range []struct {
		keys []string
		want string
	}{
		{[]string{"asynq:{interactive}:pending", "asynq:{interactive}:paused", "asynq:{interactive}:active", "asynq:{interactive}:lease"}, "interactive"},
		{[]string{"asynq:{a}:pending", "asynq:{b}:paused", "asynq:{a}:active", "asynq:{a}:lease"}, ""},
		{[]string{"asynq:{a}:scheduled", "asynq:{a}:pending"}, ""},
		{[]string{"asynq:{a}:pending", "asynq:{a}:paused", "asynq:{a}:active"}, ""},
	} {
		if got, _ := dequeueQueue(c.keys); got != c.want {
			t.Errorf("dequeueQueue(%q) = %q, want %q", c.keys, got, c.want)
		}
	}
}

// TestFirstJobOnNewRedis: the dequeue script unknown to Redis (NOSCRIPT,
// then EVAL) is not a failure that pauses the worker.
func TestFirstJobOnNewRedis(t *testing.T) {
	s := startPickup(t, nil)
	s.listening(t)
	s.quiet(t)
	ctx := t.Context()
	if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	v, err := s.jobs.Enqueue(ctx, "alice", dag)
	if err != nil {
		t.Fatal(err)
	}
	if v, err = s.jobs.Wait(ctx, "alice", v.JobID, 5*time.Second, nil); err != nil || v.State != jobs.StateCompleted {
		t.Fatalf("job: %+v, %v; want completed", v, err)
	}
	if n := s.w.pickup.Load().pauses.Load(); n != 0 {
		t.Errorf("the worker paused %d times after SCRIPT FLUSH; want none", n)
	}
}
