package mcp

import (
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/invalidation"
)

// sessionCache keeps what this replica read of HTTP sessions, so that a
// request on a session costs no round trip to Redis: mcp-go validates the
// session of every request, and the task layer reads what it negotiated.
//
// It is only trusted while Redis's invalidations of the session keys flow
// (package invalidation): any write to a session, on any replica (an
// initialize, a DELETE, a TTL renewal, its expiry), makes Redis send its
// key, and the entry is dropped. A read answered while an invalidation may
// have been on its way is not kept (the epoch moved). An entry is also
// dropped after maxSessionAge whatever was heard, which bounds how late a
// connection that died silently can make a replica notice a DELETE.
type sessionCache struct {
	rdb redis.UniversalClient

	mu      sync.Mutex
	inv     *invalidation.Listener // started at the first read
	closed  bool
	epoch   uint64 // moves at every invalidation
	entries map[string]cachedSession
}

type cachedSession struct {
	value string
	at    time.Time
}

const (
	// maxSessionAge bounds an entry's life.
	maxSessionAge = 10 * time.Second
	// maxCachedSessions bounds the cache: a full cache drops its aged
	// entries, or all of them.
	maxCachedSessions = 100_000
)

// newSessionCache returns a cache that starts listening to the
// invalidations of the session keys at its first use; close stops.
func newSessionCache(rdb redis.UniversalClient) *sessionCache {
	return &sessionCache{rdb: rdb, entries: map[string]cachedSession{}}
}

// listening reports whether invalidations flow, starting the listener on
// first use; c.mu is held.
func (c *sessionCache) listening() bool {
	if c.inv == nil && !c.closed {
		c.inv = invalidation.Listen(c.rdb, []string{sessionKey("")}, invalidation.Handler{
			Keys: c.forgetKeys,
			All:  c.forgetAll,
			Lost: func(error) { c.forgetAll() },
		})
	}
	return c.inv != nil && c.inv.Listening()
}

func (c *sessionCache) close() {
	c.mu.Lock()
	inv := c.inv
	c.closed = true
	c.mu.Unlock()
	if inv != nil {
		inv.Close()
	}
}

// get answers session id's value when a fresh one is cached and
// invalidations flow.
func (c *sessionCache) get(id string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.listening() {
		return "", false
	}
	e, ok := c.entries[id]
	if !ok || time.Since(e.at) > maxSessionAge {
		return "", false
	}
	return e.value, true
}

// begin returns the epoch to give put with what a read started now answers.
func (c *sessionCache) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// put keeps a session's value read since begin answered epoch, unless an
// invalidation came meanwhile (it may be for this session, and may have
// come before or after the read).
func (c *sessionCache) put(id, value string, epoch uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch || !c.listening() {
		return
	}
	if len(c.entries) >= maxCachedSessions {
		for id, e := range c.entries {
			if at.Sub(e.at) > maxSessionAge {
				delete(c.entries, id)
			}
		}
		if len(c.entries) >= maxCachedSessions {
			clear(c.entries)
		}
	}
	c.entries[id] = cachedSession{value: value, at: at}
}

// forget drops a session this replica writes, before its invalidation
// comes back.
func (c *sessionCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	delete(c.entries, id)
}

func (c *sessionCache) forgetKeys(keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	prefix := sessionKey("")
	for _, k := range keys {
		if len(k) > len(prefix) {
			delete(c.entries, k[len(prefix):])
		}
	}
}

func (c *sessionCache) forgetAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	clear(c.entries)
}
