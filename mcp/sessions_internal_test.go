package mcp

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
)

// TestSessionRenewedOnceHalfItsTTLHasPassed: a read renews a session's TTL
// only once half of it has passed (a renewal is a write that every
// replica's cache hears), and an unknown session is refused.
func TestSessionRenewedOnceHalfItsTTLHasPassed(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	s := &redisSessions{rdb: rdb, ttl: time.Hour}
	ctx := t.Context()
	id := sessionPrefix + uuid.NewString()
	key := sessionKey(id)

	if err := rdb.Set(ctx, key, string(shapeLegacy), 40*time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if got := s.read(ctx, id); got.err != nil || got.value != string(shapeLegacy) {
		t.Fatalf("read = %+v", got)
	}
	if d := rdb.PTTL(ctx, key).Val(); d > 41*time.Minute {
		t.Errorf("a session with 40 of 60 minutes left was renewed (TTL %v)", d)
	}

	if err := rdb.PExpire(ctx, key, 20*time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if got := s.read(ctx, id); got.err != nil || got.value != string(shapeLegacy) {
		t.Fatalf("read = %+v", got)
	}
	if d := rdb.PTTL(ctx, key).Val(); d < 59*time.Minute {
		t.Errorf("a session with 20 of 60 minutes left was not renewed (TTL %v)", d)
	}

	if got := s.read(ctx, sessionPrefix+uuid.NewString()); got.err != errUnknownSession {
		t.Errorf("an unknown session reads %+v", got)
	}
}
