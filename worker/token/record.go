package token

import (
	"context"
	_ "embed"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// Record is the shared token as stored in Redis.
type Record struct {
	// Token is the access token with its expiry. It prints as a fingerprint.
	Token intranet.Token
	// Generation grows by one at each refresh; 0 means no token yet.
	Generation int64
	// RefreshedBy names the replica that fetched the token.
	RefreshedBy string
	// RefreshedAt is when it was stored.
	RefreshedAt time.Time
}

// validFor reports whether the token is usable for at least d more.
func (r Record) validFor(d time.Duration, now time.Time) bool {
	return r.Token.Value != "" && (r.Token.ExpiresAt.IsZero() || r.Token.ExpiresAt.Sub(now) > d)
}

//go:embed set.lua
var setSource string

// setScript writes a token with a compare-and-set on the generation.
var setScript = redis.NewScript(setSource)

// load reads the record; a missing record is a zero Record.
func load(ctx context.Context, rdb redis.UniversalClient, key string) (Record, error) {
	m, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return Record{}, err
	}
	if len(m) == 0 {
		return Record{}, nil
	}
	gen, err := strconv.ParseInt(m["generation"], 10, 64)
	if err != nil {
		return Record{}, errors.New("token: the Redis record has no valid generation")
	}
	return Record{
		Token: intranet.Token{
			Value:     m["token"],
			ExpiresAt: unixMilli(m["expires_at"]),
			IssuedAt:  unixMilli(m["issued_at"]),
		},
		Generation:  gen,
		RefreshedBy: m["refreshed_by"],
		RefreshedAt: unixMilli(m["refreshed_at"]),
	}, nil
}

// store writes tok as the successor of generation replaced; it returns the
// new generation, or 0 when another writer got there first.
func store(ctx context.Context, rdb redis.UniversalClient, key string, replaced int64, tok intranet.Token, by string, now time.Time) (int64, error) {
	ttl := 24 * time.Hour
	if !tok.ExpiresAt.IsZero() {
		ttl += max(tok.ExpiresAt.Sub(now), 0)
	}
	return setScript.Run(ctx, rdb, []string{key},
		replaced, tok.Value, millis(tok.ExpiresAt), millis(tok.IssuedAt), by, now.UnixMilli(), ttl.Milliseconds(),
	).Int64()
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func unixMilli(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
