package chaos

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
)

// sentinelMaster is the name the Sentinel monitors the primary under.
const sentinelMaster = "mcpjobs"

// startSentinel starts, beside the primary c.redis, a replica and one
// redis-sentinel (quorum 1, down after 1 s) on loopback, and points the
// processes and the harness at the Sentinel.
func (c *cluster) startSentinel(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-sentinel"); err != nil {
		t.Fatal("the Sentinel scenario needs redis-sentinel on PATH (apt-get install redis-sentinel)")
	}
	c.replica = redistest.StartReplica(t, c.redis)
	s := redistest.StartSentinel(t, c.redis, sentinelMaster)
	c.sentinelAddr = s.Addr
	c.redisURL = s.URL
	c.rdb = redis.NewFailoverClient(&redis.FailoverOptions{MasterName: sentinelMaster, SentinelAddrs: []string{c.sentinelAddr}})
	t.Cleanup(func() { _ = c.rdb.Close() })
	// Wait until the Sentinel knows the replica: only then can it fail over.
	sc := redis.NewSentinelClient(&redis.Options{Addr: c.sentinelAddr})
	t.Cleanup(func() { _ = sc.Close() })
	waitFor(t.Context(), t, 30*time.Second, "the Sentinel sees the replica", func() bool {
		reps, err := sc.Replicas(t.Context(), sentinelMaster).Result()
		return err == nil && len(reps) == 1 && !strings.Contains(reps[0]["flags"], "down")
	})
}

// primaryAddr answers the primary's address as the Sentinel tells it.
func (c *cluster) primaryAddr(ctx context.Context) string {
	sc := redis.NewSentinelClient(&redis.Options{Addr: c.sentinelAddr})
	defer sc.Close()
	addr, err := sc.GetMasterAddrByName(ctx, sentinelMaster).Result()
	if err != nil || len(addr) != 2 {
		return ""
	}
	return net.JoinHostPort(addr[0], addr[1])
}

// checkAuthCalls checks the promise about the shared token when Redis
// fails over or loses its data: at most one auth call more than the
// token expiries (here: none, so the first token and at most one more).
func checkAuthCalls(t *testing.T, c *cluster, d *driver, r *result) {
	t.Helper()
	st := c.stats(t)
	if r.authCalls > 1+st.Expiries+1 {
		t.Errorf("auth calls = %d with %d token expiries; want at most %d (the first token and at most one more)", r.authCalls, st.Expiries, 2+st.Expiries)
	}
}

// TestChaosSentinelFailover runs Redis as a primary, a replica and a
// Sentinel, with REDIS_WAIT_REPLICAS=1 on the MCP server. Once 60 jobs
// ended, the primary is killed with SIGKILL; the Sentinel promotes the
// replica, and the killed primary is started again 3 s after the failover
// (as a supervisor would), becoming the new primary's replica. Every job
// whose ID was handed out completes, or get_job reports it lost (only jobs
// sent before the old primary rejoined may be); no batch task is
// submitted twice.
func TestChaosSentinelFailover(t *testing.T) {
	var rejoined time.Time
	runScenario(t, scenario{
		name:    "sentinel-sigkill",
		cluster: clusterConfig{workers: 2, sentinel: true, mcpEnv: []string{"REDIS_WAIT_REPLICAS=1"}},
		trouble: func(ctx context.Context, t *testing.T, c *cluster, d *driver) string {
			waitFor(ctx, t, 2*time.Minute, "60 jobs ended", func() bool { return d.ended.Load() >= 60 })
			old := c.redis.Addr
			c.redis.Kill(t)
			killed := time.Now()
			t.Logf("%s primary %s killed (SIGKILL)", stamp(), old)
			var primary string
			waitFor(ctx, t, 30*time.Second, "the Sentinel promotes the replica", func() bool {
				primary = c.primaryAddr(ctx)
				return primary != "" && primary != old
			})
			failedOver := time.Since(killed)
			t.Logf("%s the Sentinel made %s the primary after %v", stamp(), primary, failedOver.Round(100*time.Millisecond))
			sleep(ctx, 3*time.Second)
			c.redis.Restart(t)
			t.Logf("%s old primary started again", stamp())
			nrdb := c.replica.Client(t)
			waitFor(ctx, t, 60*time.Second, "the old primary replicates the new one", func() bool {
				info, err := nrdb.Info(ctx, "replication").Result()
				return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
			})
			rejoined = time.Now()
			t.Logf("%s old primary is a replica again, %v after the kill", stamp(), rejoined.Sub(killed).Round(100*time.Millisecond))
			return fmt.Sprintf("primary killed (SIGKILL) once 60 jobs ended; the Sentinel promoted the replica %v later; the old primary, restarted 3 s after that, replicated the new one %v after the kill",
				failedOver.Round(100*time.Millisecond), rejoined.Sub(killed).Round(100*time.Millisecond))
		},
		mayLose: func(o outcome) bool { return o.sent.Before(rejoined) },
		verify: func(t *testing.T, c *cluster, d *driver, r *result) {
			checkAuthCalls(t, c, d, r)
			r.note += fmt.Sprintf("; %d jobs reported lost by get_job, %d answers naming a job not acknowledged by the replica (followed with get_job)", r.lost, d.uncertain.Load())
		},
	})
}

// TestChaosDataLoss empties Redis (FLUSHALL) once 60 jobs ended, as a
// failover to an empty replica or a restart without persistence would.
// get_job reports the jobs from before the flush lost with a clear error
// (or they complete); every job sent after it completes, without
// restarting any process: the MCP server re-registers asynq's queues.
func TestChaosDataLoss(t *testing.T) {
	var flushed time.Time
	runScenario(t, scenario{
		name:    "data-loss",
		cluster: clusterConfig{workers: 2},
		trouble: func(ctx context.Context, t *testing.T, c *cluster, d *driver) string {
			waitFor(ctx, t, 2*time.Minute, "60 jobs ended", func() bool { return d.ended.Load() >= 60 })
			flushed = time.Now()
			if err := c.rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatalf("FLUSHALL: %v", err)
			}
			t.Logf("%s Redis flushed (FLUSHALL) after %d jobs were enqueued", stamp(), d.enqueued.Load())
			return fmt.Sprintf("FLUSHALL once 60 jobs ended (%d enqueued)", d.enqueued.Load())
		},
		mayLose: func(o outcome) bool { return o.sent.Before(flushed) },
		verify: func(t *testing.T, c *cluster, d *driver, r *result) {
			checkAuthCalls(t, c, d, r)
			r.note += fmt.Sprintf("; %d jobs reported lost by get_job (all sent before the flush); every job sent after it completed", r.lost)
		},
	})
}
