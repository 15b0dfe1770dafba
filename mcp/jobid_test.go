package mcp_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
	"github.com/mcpjobs/mcpjobs/mcp"
)

// redisGone is a go-redis hook that lets commands through until asynq's
// enqueue script has run, then fails every command: Redis went away right
// after taking the job.
type redisGone struct{ gone atomic.Bool }

var errGone = errors.New("injected: Redis went away")

func (h *redisGone) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *redisGone) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.gone.Load() {
			cmd.SetErr(errGone)
			return errGone
		}
		err := next(ctx, cmd)
		if n := cmd.Name(); err == nil && (n == "evalsha" || n == "eval") && strings.Contains(strings.Join(argStrings(cmd), " "), ":t:") {
			h.gone.Store(true)
		}
		return err
	}
}

func (h *redisGone) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.gone.Load() {
			return errGone
		}
		return next(ctx, cmds)
	}
}

func argStrings(cmd redis.Cmder) []string {
	var out []string
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// TestWaitFailureNamesTheJob: when waiting fails after the job was queued,
// the answer names the job, so that the caller does not queue another.
func TestWaitFailureNamesTheJob(t *testing.T) {
	srv := redistest.Start(t)
	clean := srv.Client(t)
	rdb := srv.Client(t)
	hook := &redisGone{}
	rdb.AddHook(hook)
	jc := store.NewClient(rdb, store.Options{})
	t.Cleanup(func() { _ = jc.Close() })
	m, err := mcp.New(mcp.Options{Jobs: jc})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(m.HTTPHandler())
	t.Cleanup(hs.Close)
	e := &env{rdb: clean, url: hs.URL + "/mcp"}
	res := call(t, e.client(t, ""), "execute_code_to_dag", map[string]any{"code": "x", "language": "python", "wait_seconds": 1})
	text := res.Content[0].(mcpgo.TextContent).Text
	if !res.IsError || !hook.gone.Load() {
		t.Fatalf("answer %q (Redis gone: %v)", text, hook.gone.Load())
	}
	id := regexp.MustCompile(`dag-[0-9a-f-]{36}`).FindString(text)
	if id == "" {
		t.Fatalf("the answer does not name the job: %q", text)
	}
	if _, err := asynq.NewInspectorFromRedisClient(clean).GetTaskInfo(jobs.QueueInteractive, id); err != nil {
		t.Errorf("the job it names is not queued: %v", err)
	}
}
