package jobs

// Listing limits.
const (
	DefaultListLimit = 20
	MaxListLimit     = 100
)

// ValidStates are the states list_jobs filters on.
var ValidStates = []State{StatePending, StateScheduled, StateActive, StateRetry, StateCompleted, StateFailed, StateCancelled}
