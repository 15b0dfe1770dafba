package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

// errHandedBack ends an attempt that this replica cannot run because the
// platform refused its own credentials (40101). The job goes back to its
// queue at once, without using up a retry, for a replica whose credentials
// work; this replica parks (see Worker.Run).
var errHandedBack = errors.New("worker: handed back: this replica's platform credentials were refused")

// ErrCredentialsRefused is Worker.Ready's answer while the replica is parked
// because the platform refused its credentials.
var ErrCredentialsRefused = errors.New("worker: the platform refused this replica's credentials (40101); it takes no jobs until they work (fix INTRANET_PASSWORD_FILE or the account: it retries by itself)")

// Healer is a TokenSource that can tell whether this replica's own
// credentials work again; *token.Shared is one. A parked worker calls Heal
// with backoff and resumes taking jobs once it returns nil.
type Healer interface {
	// Heal re-reads the credentials and checks them; it returns an error
	// wrapping intranet.ErrInvalidCredentials while they are still refused.
	Heal(ctx context.Context) error
}

// ParkBackoff paces a parked replica's checks of its credentials.
type ParkBackoff struct {
	// Min is the wait before the first check. Default: 2s.
	Min time.Duration
	// Max caps the wait, which doubles after every refused check.
	// Default: 2m.
	Max time.Duration
}

func (b ParkBackoff) withDefaults() ParkBackoff {
	if b.Min <= 0 {
		b.Min = 2 * time.Second
	}
	if b.Max <= 0 {
		b.Max = 2 * time.Minute
	}
	if b.Max < b.Min {
		b.Max = b.Min
	}
	return b
}

// refused reports whether err says that the platform refused this
// replica's own credentials, as opposed to an auth outage.
func refused(err error) bool {
	return errors.Is(err, intranet.ErrInvalidCredentials)
}

// handBack hands a job back and asks Run to park the replica.
func (w *Worker) handBack(ctx context.Context, err error) error {
	select {
	case w.parkCh <- struct{}{}:
	default: // already asked
	}
	w.log.DebugContext(ctx, "job handed back: credentials refused", slog.Any("error", err))
	return fmt.Errorf("%w: %w", errHandedBack, err)
}

// Ready answers nil while the replica takes jobs, and ErrCredentialsRefused
// while it is parked.
func (w *Worker) Ready() error {
	if w.parked.Load() {
		return ErrCredentialsRefused
	}
	return nil
}

// park runs while the replica is parked: it checks the credentials with
// backoff until they work (true) or ctx ends (false).
func (w *Worker) park(ctx context.Context) bool {
	w.parked.Store(true)
	w.metrics.parked.Set(1)
	defer func() {
		w.parked.Store(false)
		w.metrics.parked.Set(0)
	}()
	healer, _ := w.cfg.Tokens.(Healer)
	wait := w.cfg.ParkBackoff.Min
	for attempt := 1; ; attempt++ {
		w.log.ErrorContext(ctx, "platform refused this replica's credentials (40101): taking no jobs; fix INTRANET_PASSWORD_FILE or the account, it retries by itself",
			slog.Int("attempt", attempt), slog.Duration("next_check_in", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		if healer == nil {
			return true // nothing to check with: try jobs again
		}
		err := healer.Heal(ctx)
		if err == nil {
			w.log.InfoContext(ctx, "platform credentials work again: taking jobs")
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !refused(err) {
			// Not a refusal (the auth endpoint is down, Redis hiccups):
			// take jobs again; the shared cooldown keeps the endpoint safe.
			w.log.WarnContext(ctx, "credentials check failed without a refusal: taking jobs again", slog.Any("error", err))
			return true
		}
		wait = min(2*wait, w.cfg.ParkBackoff.Max)
	}
}
