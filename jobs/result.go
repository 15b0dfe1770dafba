package jobs

import "encoding/json"

// Result is what a worker stores as the result of a job that succeeded.
type Result struct {
	// Data is the platform's data, as it answered it.
	Data json.RawMessage `json:"data" jsonschema:"The platform's answer."`
	// ExecutionTimeMS is the duration of the platform call that succeeded.
	ExecutionTimeMS int64 `json:"execution_time_ms" jsonschema:"Duration of the platform call that succeeded, in milliseconds."`
	// Attempts is the number of attempts the job took, this one included.
	Attempts int `json:"attempts"`
}

// Failure is why a job failed for good.
type Failure struct {
	// Code is the platform's envelope code, when the platform gave one.
	Code int `json:"code,omitempty" jsonschema:"The platform's error code, when it gave one."`
	// Class is the error class (permanent, token_expired, …).
	Class string `json:"class,omitempty" jsonschema:"The error class, e.g. permanent or token_expired."`
	// Message says what went wrong; it never contains a secret.
	Message string `json:"message" jsonschema:"What went wrong."`
}

// record is the asynq result of a job: a Result when it succeeded, or the
// Failure (with the attempts made) when it failed for good.
type record struct {
	Result
	Error *Failure `json:"error,omitempty"`
}

// EncodeFailure returns the stored form of a failure after attempts attempts.
func EncodeFailure(f Failure, attempts int, executionTimeMS int64) []byte {
	b, _ := json.Marshal(record{Result: Result{Attempts: attempts, ExecutionTimeMS: executionTimeMS}, Error: &f})
	return b
}

// EncodeResult returns the stored form of a result.
func EncodeResult(r Result) []byte {
	if r.Data == nil {
		r.Data = json.RawMessage("null")
	}
	b, _ := json.Marshal(r)
	return b
}
