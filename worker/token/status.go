package token

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// Status is the operator's view of the shared token. It holds no secret.
type Status struct {
	// Fingerprint identifies the token without revealing it ("none" when absent).
	Fingerprint string `json:"fingerprint"`
	// Generation counts stored refreshes (informational: it restarts at 1
	// after Redis lost data); Seq is the token's number in issue order.
	Generation int64 `json:"generation"`
	Seq        int64 `json:"seq,omitempty"`
	// Credentials is the fingerprint of the credentials that fetched it.
	Credentials string `json:"credentials,omitempty"`
	// ExpiresAt and ExpiresIn are when the token expires, and how soon.
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	ExpiresIn   string     `json:"expires_in,omitempty"`
	RefreshedBy string     `json:"refreshed_by,omitempty"`
	RefreshedAt *time.Time `json:"refreshed_at,omitempty"`
	// LockHeldBy names the replica refreshing right now, if any.
	LockHeldBy string `json:"lock_held_by,omitempty"`
	// Cooldowns lists the auth cooldowns running, one per set of
	// credentials that failed recently, longest first.
	Cooldowns []Cooldown `json:"cooldowns,omitempty"`
}

// Cooldown is the pause of one set of credentials after a failed auth call:
// replicas with those credentials do not call the auth endpoint until it
// runs out; replicas with other credentials are not held up.
type Cooldown struct {
	// Credentials is the fingerprint of the credentials.
	Credentials string `json:"credentials"`
	// Kind is "invalid_credentials" after a 40101 (only the replicas with
	// these credentials are refused), else "auth_unavailable" (an outage).
	Kind string `json:"kind"`
	// Remaining is how long it still runs, e.g. "29.5s".
	Remaining string `json:"remaining"`
	// Reason is the failure that started it.
	Reason string `json:"reason"`

	ttl time.Duration
}

// ReadStatus reads the status of the shared token stored under key
// (default "mcpjobs:token").
func ReadStatus(ctx context.Context, rdb redis.UniversalClient, key string, now time.Time) (Status, error) {
	if key == "" {
		key = DefaultKey
	}
	rec, err := load(ctx, rdb, key)
	if err != nil {
		return Status{}, err
	}
	st := Status{Fingerprint: intranet.Fingerprint(rec.Token.Value), Generation: rec.Generation, Seq: rec.Seq,
		Credentials: rec.Credentials, RefreshedBy: rec.RefreshedBy}
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
	st.Cooldowns, err = cooldowns(ctx, rdb, key)
	return st, err
}

// cooldowns lists the running cooldowns of key, longest first.
func cooldowns(ctx context.Context, rdb redis.UniversalClient, key string) ([]Cooldown, error) {
	prefix := cooldownKey(key, "")
	var out []Cooldown
	iter := rdb.Scan(ctx, 0, escapeGlob(prefix)+"*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl < 0 {
			continue // gone meanwhile (0 is its last millisecond: still running)
		}
		v, err := rdb.Get(ctx, k).Result()
		if err != nil {
			continue
		}
		kind, reason, _ := strings.Cut(v, "\n")
		out = append(out, Cooldown{Credentials: strings.TrimPrefix(k, prefix), Kind: kind,
			Remaining: ttl.Round(time.Millisecond).String(), Reason: reason, ttl: ttl})
	}
	if err := iter.Err(); err != nil {
		return out, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ttl > out[j].ttl })
	return out, nil
}

// escapeGlob escapes the characters special to Redis's MATCH.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Purge deletes every key of the shared token stored under key (default
// "mcpjobs:token"): the record, the lock, the issue counter, the cooldowns
// and failure counts. Replicas fetch a new token at their next need; for
// tests and benchmarks.
func Purge(ctx context.Context, rdb redis.UniversalClient, key string) error {
	if key == "" {
		key = DefaultKey
	}
	keys := []string{key, key + ":lock", key + ":seq"}
	for _, pattern := range []string{cooldownKey(key, ""), failuresKey(key, "")} {
		iter := rdb.Scan(ctx, 0, escapeGlob(pattern)+"*", 100).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return err
		}
	}
	return rdb.Del(ctx, keys...).Err()
}
