package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// One round trip per enqueue.
//
// asynq's Client enqueues a task with one Lua script (EVALSHA) and takes no
// other commands along. mcpjobs writes the owner's job index before it, so
// that a job whose enqueue outcome is unknown can still be listed: two
// round trips, where a bare asynq enqueue is one. enqueueClient, the Redis
// client the store hands asynq's Client, sends the commands an enqueue
// queued on its context (withBefore) in one pipeline with the script,
// before it: Redis runs them in that order, so the index entry is there
// before the job, as with two round trips, at the cost of one.

// beforeKey marks, on an enqueue's context, the commands to send before
// asynq's enqueue script.
type beforeKey struct{}

// withBefore returns ctx carrying pipe's queued commands, to be sent in
// the same round trip as the next script asynq runs with ctx.
func withBefore(ctx context.Context, pipe redis.Pipeliner) context.Context {
	return context.WithValue(ctx, beforeKey{}, pipe)
}

// enqueueClient is the Redis client of the store's asynq.Client.
type enqueueClient struct {
	redis.UniversalClient
}

// EvalSha runs a script by its hash, after the commands queued on ctx
// (withBefore), in one pipeline. (go-redis sends a script with Eval only
// after EvalSha answered NOSCRIPT, so the queued commands have been sent
// by then.)
func (c enqueueClient) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	pipe, ok := ctx.Value(beforeKey{}).(redis.Pipeliner)
	if !ok || pipe.Len() == 0 {
		return c.UniversalClient.EvalSha(ctx, sha1, keys, args...)
	}
	cmd := pipe.EvalSha(ctx, sha1, keys, args...)
	_, _ = pipe.Exec(ctx) // each command holds its own outcome
	return cmd
}

// firstError returns the first error of cmds.
func firstError(cmds []redis.Cmder) error {
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil && err != redis.Nil {
			return err
		}
	}
	return nil
}
