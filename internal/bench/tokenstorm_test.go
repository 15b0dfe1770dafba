package bench_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/bench"
	"github.com/mcpjobs/mcpjobs/internal/redistest"
)

func TestTokenStorm(t *testing.T) {
	srv := redistest.Start(t)
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := bench.TokenStorm(t.Context(), bench.TokenStormConfig{
		Replicas: 2, InFlight: 4, Expiries: 3, Phase: 150 * time.Millisecond,
		NewRedis: func() redis.UniversalClient { return redis.NewClient(opt) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Shared.AuthCalls != 4 || rep.Shared.AuthCallsPerLifetime != 1 || rep.Shared.FailedCalls != 0 {
		t.Errorf("shared token: %+v; want one auth call per lifetime and no failure", rep.Shared)
	}
	if rep.Shared.Hit.Count == 0 || rep.Shared.Plain.Count == 0 {
		t.Errorf("no latencies measured: %+v", rep.Shared)
	}
	if rep.Baseline.AuthCalls < rep.Shared.AuthCalls {
		t.Errorf("per-process baseline made fewer auth calls (%d) than the shared token (%d)", rep.Baseline.AuthCalls, rep.Shared.AuthCalls)
	}
}
