package worker

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// TokenSource gives the platform token a worker calls with.
type TokenSource interface {
	// Token returns a token that is valid now, fetching one if needed.
	Token(ctx context.Context) (intranet.Token, error)
	// Refresh replaces stale, a token the platform refused (40003), and
	// returns its successor. Concurrent callers with the same stale token
	// share one refresh.
	Refresh(ctx context.Context, stale intranet.Token) (intranet.Token, error)
}

// LocalTokens is a TokenSource that keeps the token in this process only:
// each process fetches its own, as the original server did. With several
// replicas their refreshes knock each other's tokens out (the platform keeps
// one live token per account); it is kept as the baseline that the shared
// token (package worker/token) is measured against.
type LocalTokens struct {
	client *intranet.Client
	margin time.Duration

	mu    sync.Mutex
	token intranet.Token
	group singleflight.Group
}

// NewLocalTokens returns a per-process token cache that authenticates with
// client and refreshes margin before expiry (default 60s).
func NewLocalTokens(client *intranet.Client, margin time.Duration) *LocalTokens {
	if margin <= 0 {
		margin = time.Minute
	}
	return &LocalTokens{client: client, margin: margin}
}

// Token implements TokenSource.
func (l *LocalTokens) Token(ctx context.Context) (intranet.Token, error) {
	l.mu.Lock()
	tok := l.token
	l.mu.Unlock()
	if tok.Value != "" && time.Until(tok.ExpiresAt) > l.margin {
		return tok, nil
	}
	return l.Refresh(ctx, tok)
}

// Refresh implements TokenSource.
func (l *LocalTokens) Refresh(ctx context.Context, stale intranet.Token) (intranet.Token, error) {
	ch := l.group.DoChan("refresh", func() (any, error) {
		l.mu.Lock()
		cur := l.token
		l.mu.Unlock()
		if cur.Value != "" && cur.Value != stale.Value && time.Until(cur.ExpiresAt) > l.margin {
			return cur, nil
		}
		tok, err := l.client.Authenticate(context.WithoutCancel(ctx))
		if err != nil {
			return intranet.Token{}, err
		}
		l.mu.Lock()
		l.token = tok
		l.mu.Unlock()
		return tok, nil
	})
	select {
	case <-ctx.Done():
		return intranet.Token{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return intranet.Token{}, r.Err
		}
		return r.Val.(intranet.Token), nil
	}
}
