package store

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/jobs"
)

// A caller's own platform token is kept apart from the task payload, under
// its own key with a TTL, so that it never shows in the dashboard, in task
// payloads, in logs or in results. The worker removes it when the job ends.

func credentialKey(jobID string) string { return "mcpjobs:credential:" + jobID }

// saveCredential stores a caller's token for a new job until its deadline
// (ttl), unless the job ID has a token already; it reports whether it
// stored it.
func saveCredential(ctx context.Context, rdb redis.UniversalClient, jobID, token string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		ttl = jobs.InteractiveDeadline
	}
	return rdb.SetNX(ctx, credentialKey(jobID), token, ttl).Result()
}

// Credential returns the caller's own token for a job, or "" when the job
// uses the shared token.
func Credential(ctx context.Context, rdb redis.UniversalClient, jobID string) (string, error) {
	tok, err := rdb.Get(ctx, credentialKey(jobID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return tok, err
}

// HasCredential is the task header that says a job carries a caller's token;
// a worker that then finds no token fails the job instead of silently using
// the shared one. Its value is "1" for the job's own token, or the ID of
// the job whose token it uses (a batch job's checks and status queries).
const HasCredential = "credential"

// CredentialJob returns the job whose caller token a task uses, and whether
// that token is the task's own (to drop when the task ends); "" when the
// task uses the shared token.
func CredentialJob(t *asynq.Task) (jobID string, own bool) {
	switch v := t.Headers()[HasCredential]; v {
	case "":
		return "", false
	case "1":
		return t.ResultWriter().TaskID(), true
	default:
		return v, false
	}
}

// DropCredential removes the caller's token of a job that has ended.
func DropCredential(ctx context.Context, rdb redis.UniversalClient, jobID string) error {
	return rdb.Del(ctx, credentialKey(jobID)).Err()
}
