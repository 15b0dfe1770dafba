package invalidation_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/invalidation"
	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/internal/testwait"
)

// heard records what a listener told.
type heard struct {
	mu   sync.Mutex
	keys []string
	all  int
	lost int
}

func (h *heard) handler() invalidation.Handler {
	return invalidation.Handler{
		Keys: func(keys []string) { h.mu.Lock(); h.keys = append(h.keys, keys...); h.mu.Unlock() },
		All:  func() { h.mu.Lock(); h.all++; h.mu.Unlock() },
		Lost: func(error) { h.mu.Lock(); h.lost++; h.mu.Unlock() },
	}
}

func (h *heard) state() (keys []string, all, lost int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.keys), h.all, h.lost
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, 10*time.Second, what, cond)
}

// TestListen: writes under a prefix are heard by key, others not; a flush
// and a lost connection say that anything may have changed.
func TestListen(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	h := &heard{}
	l := invalidation.Listen(rdb, []string{"watched:"}, h.handler())
	t.Cleanup(l.Close)
	waitFor(t, "the listener to listen", l.Listening)
	ctx := t.Context()
	if err := rdb.Set(ctx, "other:1", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "watched:1", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the write to be heard", func() bool { keys, _, _ := h.state(); return slices.Contains(keys, "watched:1") })
	if keys, _, _ := h.state(); slices.Contains(keys, "other:1") {
		t.Errorf("heard a key outside the prefixes: %v", keys)
	}

	_, allBefore, _ := h.state()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the flush to be heard", func() bool { _, all, _ := h.state(); return all > allBefore })

	_, allBefore, _ = h.state()
	if err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the loss, then listening again", func() bool {
		_, all, lost := h.state()
		return lost > 0 && all > allBefore && l.Listening()
	})
	if err := rdb.Set(ctx, "watched:2", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a write after the reconnection", func() bool { keys, _, _ := h.state(); return slices.Contains(keys, "watched:2") })
}

// TestListenRefusesAClusterClient: a client that is not a *redis.Client
// never listens, and says so.
func TestListenRefusesAClusterClient(t *testing.T) {
	refused := make(chan error, 1)
	l := invalidation.Listen(redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}), []string{"x"},
		invalidation.Handler{Refused: func(err error) { refused <- err }})
	t.Cleanup(l.Close)
	select {
	case err := <-refused:
		if err != invalidation.ErrUnsupportedClient {
			t.Errorf("refused with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no refusal")
	}
	if l.Listening() {
		t.Error("listening through a cluster client")
	}
}
