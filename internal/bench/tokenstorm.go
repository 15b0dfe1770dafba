package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
	"github.com/mcpjobs/mcpjobs/worker"
	"github.com/mcpjobs/mcpjobs/worker/intranet"
	"github.com/mcpjobs/mcpjobs/worker/token"
)

// TokenStormConfig sets up the token-storm scenario.
type TokenStormConfig struct {
	// Replicas is the number of worker replicas (separate Redis clients,
	// platform clients and token sources). Default: 3.
	Replicas int
	// InFlight is the number of concurrent callers per replica. Default: 16.
	InFlight int
	// Expiries is the number of times every token is ended. Default: 5.
	Expiries int
	// Phase is how long calls run before the first expiry and after each
	// one, at least: a phase also lasts until every caller has made a call
	// that succeeded after the expiry, so that on a slow machine two
	// expiries never fall into one token lifetime. Default: 500ms.
	Phase time.Duration
	// APILatency and AuthLatency are the simulator's delays.
	// Defaults: 2ms and 20ms.
	APILatency, AuthLatency time.Duration
	// NewRedis opens one Redis connection per replica. Required.
	NewRedis func() redis.UniversalClient
}

func (c TokenStormConfig) withDefaults() TokenStormConfig {
	if c.Replicas <= 0 {
		c.Replicas = 3
	}
	if c.InFlight <= 0 {
		c.InFlight = 16
	}
	if c.Expiries <= 0 {
		c.Expiries = 5
	}
	if c.Phase <= 0 {
		c.Phase = 500 * time.Millisecond
	}
	if c.APILatency <= 0 {
		c.APILatency = 2 * time.Millisecond
	}
	if c.AuthLatency <= 0 {
		c.AuthLatency = 20 * time.Millisecond
	}
	return c
}

// TokenStormRun is one mode's figures.
type TokenStormRun struct {
	// Mode is "shared" (the Redis token) or "per_process" (the original
	// design: each replica refreshes on its own).
	Mode string `json:"mode"`
	// AuthCalls counts auth calls; AuthCallsPerLifetime divides them by the
	// number of token lifetimes (the first token plus one per expiry):
	// 1.0 is the ideal.
	AuthCalls            int64   `json:"auth_calls"`
	AuthCallsPerLifetime float64 `json:"auth_calls_per_lifetime"`
	// Calls made, and calls that failed even after one refresh and repeat.
	Calls       int64 `json:"calls"`
	FailedCalls int64 `json:"failed_calls"`
	// ExpiredAnswers is the number of 40003 answers the platform gave.
	ExpiredAnswers int64 `json:"expired_answers"`
	// Plain is the latency of calls that did not hit 40003; Hit of calls
	// that did (refresh and repeat included).
	Plain Percentiles `json:"plain"`
	Hit   Percentiles `json:"hit"`
	// ExtraP50 and ExtraP99 are Hit minus Plain: what a 40003 costs a call.
	ExtraP50 float64 `json:"extra_p50_ms"`
	ExtraP99 float64 `json:"extra_p99_ms"`
}

// TokenStormReport compares the shared token with the per-process baseline.
type TokenStormReport struct {
	Scenario string        `json:"scenario"`
	Replicas int           `json:"replicas"`
	InFlight int           `json:"in_flight_per_replica"`
	Expiries int           `json:"expiries"`
	Shared   TokenStormRun `json:"shared"`
	Baseline TokenStormRun `json:"per_process"`
	// AuthCallRatio is the baseline's auth calls over the shared token's.
	AuthCallRatio float64 `json:"auth_call_ratio_baseline_over_shared"`
}

// TokenStorm runs R replicas × C callers against the simulator, ending every
// token E times, once with the shared token and once with per-process
// tokens.
func TokenStorm(ctx context.Context, cfg TokenStormConfig) (*TokenStormReport, error) {
	if cfg.NewRedis == nil {
		return nil, errors.New("bench: TokenStormConfig.NewRedis is nil")
	}
	cfg = cfg.withDefaults()
	rep := &TokenStormReport{Scenario: "token-storm", Replicas: cfg.Replicas, InFlight: cfg.InFlight, Expiries: cfg.Expiries}
	var err error
	if rep.Shared, err = tokenStormRun(ctx, cfg, "shared"); err != nil {
		return nil, err
	}
	if rep.Baseline, err = tokenStormRun(ctx, cfg, "per_process"); err != nil {
		return nil, err
	}
	rep.AuthCallRatio = ratio(float64(rep.Baseline.AuthCalls), float64(rep.Shared.AuthCalls))
	return rep, nil
}

func tokenStormRun(ctx context.Context, cfg TokenStormConfig, mode string) (TokenStormRun, error) {
	sim, err := simulator.New(simulator.Config{Latency: cfg.APILatency, AuthLatency: cfg.AuthLatency})
	if err != nil {
		return TokenStormRun{}, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return TokenStormRun{}, err
	}
	srv := &http.Server{Handler: sim}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	base := "http://" + l.Addr().String()

	key := "mcpjobs:bench:token:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	type replica struct {
		src    worker.TokenSource
		client *intranet.Client
	}
	var replicas []replica
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for i := range cfg.Replicas {
		client, err := intranet.New(intranet.Config{BaseURL: base, Username: simulator.DefaultUsername, Password: simulator.DefaultPassword})
		if err != nil {
			return TokenStormRun{}, err
		}
		var src worker.TokenSource
		if mode == "shared" {
			rdb := cfg.NewRedis()
			shared, err := token.New(token.Config{Redis: rdb, Auth: client, Key: key, Replica: fmt.Sprintf("bench-%d", i)})
			if err != nil {
				return TokenStormRun{}, err
			}
			closers = append(closers, func() { _ = shared.Close(); _ = rdb.Close() })
			src = shared
		} else {
			src = worker.NewLocalTokens(client, 0)
		}
		replicas = append(replicas, replica{src: src, client: client})
	}
	defer func() {
		rdb := cfg.NewRedis()
		_ = token.Purge(context.Background(), rdb, key)
		_ = rdb.Close()
	}()

	var (
		mu            sync.Mutex
		plain, hit    []time.Duration
		calls, failed atomic.Int64
	)
	// epoch counts the expiries so far; caller i sets moved[i] to epoch+1
	// once a call it started in that epoch succeeded.
	var epoch atomic.Int64
	moved := make([]atomic.Int64, len(replicas)*cfg.InFlight)
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	body := map[string]string{"code": "var a = Image('dem_30m')", "language": "javascript"}
	for ri, r := range replicas {
		for ci := range cfg.InFlight {
			moved := &moved[ri*cfg.InFlight+ci]
			wg.Go(func() {
				for runCtx.Err() == nil {
					e := epoch.Load()
					start := time.Now()
					wasHit, err := callWithRefresh(runCtx, r.src, r.client, body)
					d := time.Since(start)
					if runCtx.Err() != nil {
						return
					}
					calls.Add(1)
					if err != nil {
						failed.Add(1)
					} else {
						moved.Store(e + 1)
					}
					mu.Lock()
					if wasHit {
						hit = append(hit, d)
					} else {
						plain = append(plain, d)
					}
					mu.Unlock()
				}
			})
		}
	}
	err = phase(ctx, cfg.Phase, &epoch, moved)
	for i := 0; i < cfg.Expiries && err == nil; i++ {
		sim.ExpireTokens()
		epoch.Add(1)
		err = phase(ctx, cfg.Phase, &epoch, moved)
	}
	stop()
	wg.Wait()
	if err != nil {
		return TokenStormRun{}, err
	}

	st := sim.Stats()
	run := TokenStormRun{
		Mode: mode, AuthCalls: st.AuthCalls, Calls: calls.Load(), FailedCalls: failed.Load(),
		ExpiredAnswers: st.ExpiredResponses, Plain: percentiles(plain), Hit: percentiles(hit),
	}
	run.AuthCallsPerLifetime = ratio(float64(st.AuthCalls), float64(cfg.Expiries+1))
	if run.Hit.Count > 0 {
		run.ExtraP50 = round3(run.Hit.P50 - run.Plain.P50)
		run.ExtraP99 = round3(run.Hit.P99 - run.Plain.P99)
	}
	return run, ctx.Err()
}

// callWithRefresh is the worker's call: on 40003, refresh once and repeat.
func callWithRefresh(ctx context.Context, src worker.TokenSource, c *intranet.Client, body any) (bool, error) {
	tok, err := src.Token(ctx)
	if err != nil {
		return false, err
	}
	_, err = c.Call(ctx, intranet.OpDAG, tok.Value, body)
	if !errors.Is(err, intranet.ErrTokenExpired) {
		return false, err
	}
	if tok, err = src.Refresh(ctx, tok); err != nil {
		return true, err
	}
	_, err = c.Call(ctx, intranet.OpDAG, tok.Value, body)
	return true, err
}

// phaseLimit bounds how long a phase waits for every caller to move on to
// a token that works.
const phaseLimit = time.Minute

// phase lets the callers run for at least d and until each of them has made
// a successful call since the current epoch began.
func phase(ctx context.Context, d time.Duration, epoch *atomic.Int64, moved []atomic.Int64) error {
	sleep(ctx, d)
	want := epoch.Load() + 1
	deadline := time.Now().Add(phaseLimit)
	for i := range moved {
		for moved[i].Load() < want {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("bench: token storm: a caller made no successful call within %v of an expiry; is the simulator answering?", d+phaseLimit)
			}
			sleep(ctx, time.Millisecond)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
