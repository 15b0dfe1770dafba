package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// A caller's own platform token is kept apart from the task payload, under
// its own key with a TTL, so that it never shows in the dashboard, in task
// payloads, in logs or in results. The worker removes it when the job ends.

func credentialKey(jobID string) string { return "mcpjobs:credential:" + jobID }

// saveCredential stores a caller's token for a job.
func saveCredential(ctx context.Context, rdb redis.UniversalClient, jobID, token string, ttl time.Duration) error {
	return rdb.Set(ctx, credentialKey(jobID), token, ttl).Err()
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
// the shared one.
const HasCredential = "credential"

// DropCredential removes the caller's token of a job that has ended.
func DropCredential(ctx context.Context, rdb redis.UniversalClient, jobID string) error {
	return rdb.Del(ctx, credentialKey(jobID)).Err()
}
