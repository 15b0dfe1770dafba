package jobs

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// What the MCP task layer (package mcp) needs of the job store beyond the
// tools: the Redis connection where it keeps its task records, the
// retention that bounds a task's TTL, and extra job types for programs that
// run their own jobs on this store (the conformance fixtures).

var registerMu sync.Mutex

// ErrSpecExists is returned by RegisterSpec for a type or kind already known.
var ErrSpecExists = errors.New("jobs: job type already registered")

// RegisterSpec adds a job type. It is meant for programs that run their own
// job types on this store, such as the conformance fixtures; call it before
// any Client or worker uses the package (in main or init), since job types
// are read without locking afterwards. Kind must be unique and contain no
// "-"; Queue must be a queue the program's own worker serves.
func RegisterSpec(s Spec) error {
	registerMu.Lock()
	defer registerMu.Unlock()
	if s.Type == "" || s.Kind == "" || s.Queue == "" || s.Timeout <= 0 {
		return fmt.Errorf("jobs: RegisterSpec needs Type, Kind, Queue and Timeout; got %+v", s)
	}
	for _, have := range specs {
		if have.Type == s.Type || have.Kind == s.Kind {
			return fmt.Errorf("%w: %s (kind %s)", ErrSpecExists, s.Type, s.Kind)
		}
	}
	for _, r := range s.Kind {
		if r == '-' {
			return fmt.Errorf("jobs: RegisterSpec: kind %q contains '-'; job IDs are <kind>-<uuid>", s.Kind)
		}
	}
	specs = append(specs, s)
	return nil
}

// SpecForID returns the spec of a job ID (its kind prefix names the type).
func SpecForID(id string) (Spec, bool) { return specForID(id) }

// Redis returns the client's Redis connection.
func (c *Client) Redis() redis.UniversalClient { return c.rdb }

// Retention is how long a job that ended stays readable (Options.Retention).
func (c *Client) Retention() time.Duration { return c.opts.Retention }
