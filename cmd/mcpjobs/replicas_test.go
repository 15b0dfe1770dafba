package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/internal/testwait"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/worker/token"
)

// TestMain lets tests start this test binary as the mcpjobs command:
// with MCPJOBS_TEST_MAIN=1 it runs main with its own arguments.
func TestMain(m *testing.M) {
	if os.Getenv("MCPJOBS_TEST_MAIN") == "1" {
		os.Args = append([]string{"mcpjobs"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// process is an mcpjobs subcommand running as its own process.
type process struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
}

func startProcess(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(os.Args[0], args...), stderr: &syncBuffer{}}
	p.cmd.Env = append(os.Environ(), append(env, "MCPJOBS_TEST_MAIN=1", "LOG_FORMAT=json")...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			t.Errorf("mcpjobs %s did not stop on SIGTERM within 20s", args[0])
		}
	})
	return p
}

// TestThreeWorkerProcessesShareOneToken runs three `mcpjobs worker`
// processes with 16 concurrent jobs each through hundreds of aspect jobs
// and five forced expiries: every job completes, and the platform sees one
// auth call for the first token plus one per expiry.
func TestThreeWorkerProcessesShareOneToken(t *testing.T) {
	const replicas, perReplica, total, expiries = 3, 16, 300, 5
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	sim, err := simulator.New(simulator.Config{Latency: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	env := []string{"REDIS_URL=" + srv.URL, "INTRANET_BASE_URL=" + hs.URL,
		"INTRANET_USERNAME=" + simulator.DefaultUsername, "INTRANET_PASSWORD=" + simulator.DefaultPassword, "LOG_LEVEL=info"}
	var workers []*process
	for range replicas {
		workers = append(workers, startProcess(t, env, "worker", "--concurrency", fmt.Sprint(perReplica)))
	}

	jc := store.NewClient(rdb, store.Options{})
	t.Cleanup(func() { _ = jc.Close() })
	ids := make([]string, 0, total)
	enqueueWave := func() {
		for range total / (expiries + 1) {
			i := len(ids)
			lon := 100 + float64(i%50)*0.1
			v, err := jc.Enqueue(t.Context(), "alice", jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{lon, 30, lon + 0.01, 30.01}})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, v.JobID)
		}
	}
	// waitAuthCalls waits for the refresh of an expiry, failing at once on
	// any extra auth call. It waits for the token to be issued, not only
	// asked for: an expiry between the two would not end it.
	waitAuthCalls := func(want int64) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			st := sim.Stats()
			if st.AuthCalls > want {
				t.Fatalf("%d auth calls, want %d", st.AuthCalls, want)
			}
			if st.AuthCalls == want && st.TokensIssued == want {
				return
			}
			if time.Now().After(deadline) {
				for i, w := range workers {
					t.Logf("worker %d log:\n%s", i, lastLines(w.stderr.String(), 15))
				}
				t.Fatalf("no refresh within 60s: %+v", st)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// A wave of jobs, then five times: end every token while jobs are in
	// flight, and send the next wave.
	enqueueWave()
	waitAuthCalls(1)
	for i := range expiries {
		sim.ExpireTokens()
		enqueueWave()
		waitAuthCalls(int64(i + 2))
	}
	var wg sync.WaitGroup
	states := make([]jobs.State, total)
	for i, id := range ids {
		wg.Go(func() {
			v, err := jc.Wait(t.Context(), "alice", id, 90*time.Second, nil)
			if err != nil {
				t.Error(err)
				return
			}
			states[i] = v.State
		})
	}
	wg.Wait()
	for i, st := range states {
		if st != jobs.StateCompleted {
			t.Errorf("job %s ended %s", ids[i], st)
		}
	}
	stats := sim.Stats()
	if stats.AuthCalls != expiries+1 {
		t.Errorf("auth_calls = %d, want %d (first token + one per expiry)", stats.AuthCalls, expiries+1)
	}
	t.Logf("sim: %d aspect calls, %d expired answers, %d auth calls", stats.Calls["aspect"], stats.ExpiredResponses, stats.AuthCalls)

	// The token is in clear only in Redis's token record: not in the logs.
	st, err := token.ReadStatus(t.Context(), rdb, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok := rdb.HGet(t.Context(), "mcpjobs:token", "token").Val()
	if tok == "" || st.Generation != expiries+1 {
		t.Fatalf("token record: generation %d", st.Generation)
	}
	for _, w := range workers {
		if strings.Contains(w.stderr.String(), tok) {
			t.Error("a worker logged the token in clear")
		}
	}

	// `mcpjobs token status` shows the record by fingerprint.
	var out, errOut syncBuffer
	if code := run(t.Context(), []string{"token", "status"}, nil, &out, &errOut, envFunc(map[string]string{"REDIS_URL": srv.URL})); code != 0 {
		t.Fatalf("token status exited %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), st.Fingerprint) || !strings.Contains(out.String(), fmt.Sprint(expiries+1)) || strings.Contains(out.String(), tok) {
		t.Errorf("token status:\n%s", out.String())
	}
}

// waitUntil waits for cond, at most d.
func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	testwait.Until(t, d, "the condition", cond)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
