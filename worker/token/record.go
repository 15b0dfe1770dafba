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
	// Generation grows by one at each stored refresh; 0 means no token yet.
	// It is informational only: after Redis lost data it starts again at 1.
	Generation int64
	// Seq numbers the token in the order the platform issued it (taken
	// right after the auth reply); the record only ever takes a token with
	// a higher Seq than the one it holds. 0 for a record of an older version.
	Seq int64
	// Credentials is the fingerprint of the credentials that fetched the
	// token (see intranet.CredentialsFingerprint).
	Credentials string
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

// setScript writes a token unless one issued later is stored.
var setScript = redis.NewScript(setSource)

//go:embed seq.lua
var seqSource string

// seqScript takes the next issue sequence number.
var seqScript = redis.NewScript(seqSource)

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
	seq, _ := strconv.ParseInt(m["seq"], 10, 64) // absent in records of older versions
	return Record{
		Token: intranet.Token{
			Value:     m["token"],
			ExpiresAt: unixMilli(m["expires_at"]),
			IssuedAt:  unixMilli(m["issued_at"]),
		},
		Generation:  gen,
		Seq:         seq,
		Credentials: m["credentials"],
		RefreshedBy: m["refreshed_by"],
		RefreshedAt: unixMilli(m["refreshed_at"]),
	}, nil
}

// takeSeq returns the next issue sequence number: the counter seqKey plus
// one, but never less than the stored record's seq plus one, so a lost
// counter cannot go back below the record.
func takeSeq(ctx context.Context, rdb redis.UniversalClient, key, seqKey string) (int64, error) {
	return seqScript.Run(ctx, rdb, []string{key, seqKey}).Int64()
}

// store writes r (its Token, Seq, Credentials, RefreshedBy and RefreshedAt)
// unless the record holds a token with the same or a higher Seq; it
// returns the new generation, or 0 when refused.
func store(ctx context.Context, rdb redis.UniversalClient, key string, r Record) (int64, error) {
	ttl := 24 * time.Hour
	if !r.Token.ExpiresAt.IsZero() {
		ttl += max(r.Token.ExpiresAt.Sub(r.RefreshedAt), 0)
	}
	return setScript.Run(ctx, rdb, []string{key},
		r.Seq, r.Token.Value, millis(r.Token.ExpiresAt), millis(r.Token.IssuedAt), r.RefreshedBy,
		r.RefreshedAt.UnixMilli(), ttl.Milliseconds(), r.Credentials,
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
