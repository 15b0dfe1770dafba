// Package invalidation listens to Redis's client-side-caching
// invalidations (CLIENT TRACKING … BCAST PREFIX) of some key prefixes: a
// connection of its own, in RESP2, redirects the invalidations to itself
// and receives them as pub/sub messages on __redis__:invalidate. Whoever
// writes a key under a prefix makes Redis send its name, at no cost to the
// writer.
//
// A listener that is not listening (not yet subscribed, reconnecting, a
// Redis without CLIENT TRACKING, a client that is not a *redis.Client)
// hears nothing: its user must not rely on it then (Listening), and must
// assume that anything changed when it listens again (Handler.All).
package invalidation

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// channel is where Redis sends invalidations to a RESP2 connection that
// redirects them to itself.
const channel = "__redis__:invalidate"

// Handler is what a Listener tells. Its methods are called from the
// listener's goroutine, one at a time.
type Handler struct {
	// Keys: these keys changed (or expired, or were deleted).
	Keys func(keys []string)
	// All: anything may have changed: the listener (re)started listening,
	// or the database was flushed.
	All func()
	// Lost: the listener stopped listening (err says why); All follows
	// when it listens again.
	Lost func(err error)
	// Refused: Redis refused CLIENT TRACKING (before Redis 6); the
	// listener will not listen. Called once.
	Refused func(err error)
}

// Listener keeps a connection subscribed to the invalidations of its
// prefixes until Close.
type Listener struct {
	listening atomic.Bool
	cancel    context.CancelFunc
	done      chan struct{}
	ps        atomic.Pointer[redis.PubSub]
}

// ErrUnsupportedClient is given to Handler.Refused for a client that is
// not a *redis.Client (a cluster client: invalidations come from each node).
var ErrUnsupportedClient = errors.New("invalidation: Redis invalidations need a single-node or Sentinel client")

// Listen starts listening to the invalidations of the keys that start with
// one of prefixes, on a connection of its own made from rdb's options.
func Listen(rdb redis.UniversalClient, prefixes []string, h Handler) *Listener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.run(ctx, rdb, prefixes, h)
	}()
	return l
}

// Listening reports whether invalidations flow now.
func (l *Listener) Listening() bool { return l.listening.Load() }

// Close stops listening and waits for the listener's goroutine.
func (l *Listener) Close() {
	l.cancel()
	if ps := l.ps.Load(); ps != nil {
		_ = ps.Close() // a read does not end with ctx
	}
	<-l.done
	l.listening.Store(false)
}

func (l *Listener) run(ctx context.Context, rdb redis.UniversalClient, prefixes []string, h Handler) {
	base, ok := rdb.(*redis.Client)
	if !ok {
		if h.Refused != nil {
			h.Refused(ErrUnsupportedClient)
		}
		return
	}
	var tracking atomic.Bool // the current connection tracks
	var refused atomic.Pointer[error]
	opt := *base.Options()
	opt.Protocol = 2 // invalidations as pub/sub messages
	opt.PoolSize, opt.MinIdleConns, opt.MaxIdleConns = 1, 0, 0
	prev := opt.OnConnect
	opt.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		tracking.Store(false)
		if prev != nil {
			if err := prev(ctx, cn); err != nil {
				return err
			}
		}
		id, err := cn.ClientID(ctx).Result()
		if err != nil {
			return err
		}
		args := []any{"CLIENT", "TRACKING", "ON", "REDIRECT", id, "BCAST"}
		for _, p := range prefixes {
			args = append(args, "PREFIX", p)
		}
		if err := cn.Do(ctx, args...).Err(); err != nil {
			refused.Store(&err)
			return nil // subscribe anyway; nothing will come
		}
		tracking.Store(true)
		return nil
	}
	sub := redis.NewClient(&opt)
	defer sub.Close()
	ps := sub.Subscribe(ctx, channel)
	defer ps.Close()
	l.ps.Store(ps)
	if ctx.Err() != nil { // Close came before the Store
		return
	}
	backoff := 50 * time.Millisecond
	told := false
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, 15*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if perr := ps.Ping(ctx); perr == nil {
					continue
				}
			}
			if flushed(err) {
				if h.All != nil {
					h.All()
				}
				continue
			}
			if l.listening.Swap(false) && h.Lost != nil {
				h.Lost(err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			backoff = 50 * time.Millisecond
			if !tracking.Load() {
				if r := refused.Load(); r != nil && !told && h.Refused != nil {
					told = true
					h.Refused(*r)
				}
				continue
			}
			l.listening.Store(true)
			// Whatever changed before the subscription went unheard.
			if h.All != nil {
				h.All()
			}
		case *redis.Message:
			if h.Keys != nil && len(m.PayloadSlice) > 0 {
				h.Keys(m.PayloadSlice)
			}
		}
	}
}

// flushed reports whether a receive error is go-redis refusing the
// invalidation of a flush (FLUSHDB, FLUSHALL): Redis sends it with a null
// payload, which go-redis v9 answers as "unsupported pubsub message
// payload" without closing the connection.
func flushed(err error) bool {
	return strings.Contains(err.Error(), "unsupported pubsub message payload")
}
