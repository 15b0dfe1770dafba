package token

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// Status is the operator's view of the shared token. It holds no secret.
type Status struct {
	// Fingerprint identifies the token without revealing it ("none" when absent).
	Fingerprint string `json:"fingerprint"`
	Generation  int64  `json:"generation"`
	// ExpiresAt and ExpiresIn are when the token expires, and how soon.
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	ExpiresIn   string     `json:"expires_in,omitempty"`
	RefreshedBy string     `json:"refreshed_by,omitempty"`
	RefreshedAt *time.Time `json:"refreshed_at,omitempty"`
	// LockHeldBy names the replica refreshing right now, if any.
	LockHeldBy string `json:"lock_held_by,omitempty"`
	// Cooldown is how long until the next auth attempt after a failure,
	// and CooldownReason the failure.
	Cooldown       string `json:"cooldown,omitempty"`
	CooldownReason string `json:"cooldown_reason,omitempty"`
}

// ReadStatus reads the status of the shared token stored under key
// (default "mcpjobs:token").
func ReadStatus(ctx context.Context, rdb redis.UniversalClient, key string, now time.Time) (Status, error) {
	if key == "" {
		key = "mcpjobs:token"
	}
	rec, err := load(ctx, rdb, key)
	if err != nil {
		return Status{}, err
	}
	st := Status{Fingerprint: intranet.Fingerprint(rec.Token.Value), Generation: rec.Generation, RefreshedBy: rec.RefreshedBy}
	if !rec.Token.ExpiresAt.IsZero() {
		t := rec.Token.ExpiresAt.UTC()
		st.ExpiresAt = &t
		st.ExpiresIn = t.Sub(now).Round(time.Second).String()
	}
	if !rec.RefreshedAt.IsZero() {
		t := rec.RefreshedAt.UTC()
		st.RefreshedAt = &t
	}
	if v, err := rdb.Get(ctx, key+":lock").Result(); err == nil {
		// redislock stores its random value then our ":replica" metadata.
		if _, holder, ok := strings.Cut(v, ":"); ok {
			st.LockHeldBy = holder
		}
	} else if !errors.Is(err, redis.Nil) {
		return st, err
	}
	if ttl, err := rdb.PTTL(ctx, key+":cooldown").Result(); err == nil && ttl > 0 {
		st.Cooldown = ttl.Round(time.Millisecond).String()
		st.CooldownReason = rdb.Get(ctx, key+":cooldown").Val()
	}
	return st, nil
}
