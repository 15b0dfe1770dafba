package jobs

import (
	"errors"
	"fmt"
	"sync"
)

// Extra job types, for programs that run their own jobs on the store (the
// conformance fixtures).

var registerMu sync.Mutex

// ErrSpecExists is returned by RegisterSpec for a type or kind already known.
var ErrSpecExists = errors.New("jobs: job type already registered")

// RegisterSpec adds a job type. It is meant for programs that run their own
// job types on this store, such as the conformance fixtures; call it before
// any store.Client or worker uses the package (in main or init), since job types
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
