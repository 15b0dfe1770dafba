package simulator

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// Batch task states of the platform contract.
const (
	StateQueued    = "QUEUED"
	StateRunning   = "RUNNING"
	StateSucceeded = "SUCCEEDED"
	StateFailed    = "FAILED"
	StateCancelled = "CANCELLED"
)

const (
	maxIdempotencyKey = 128            // characters
	idempotencyKeyTTL = 24 * time.Hour // how long a key is kept
	maxTaskName       = 200            // characters
)

// outputFormats are the output formats a batch task accepts.
var outputFormats = []string{"GeoTIFF", "COG", "GeoJSON", "CSV", "Parquet"}

// BatchOutput says where and how a batch task writes its result.
type BatchOutput struct {
	Format string `json:"format"`
	Path   string `json:"path"`
}

// BatchSubmitRequest is the body of POST /api/batch/submit.
type BatchSubmitRequest struct {
	Name   string      `json:"name"`
	Code   string      `json:"code"`
	Output BatchOutput `json:"output"`
}

// validate checks a submit request against the contract.
func (req BatchSubmitRequest) validate() *Error {
	if n := utf8.RuneCountInString(req.Name); n < 1 || n > maxTaskName {
		return invalidf("name must be 1 to %d characters, got %d", maxTaskName, n)
	}
	if strings.TrimSpace(req.Code) == "" {
		return invalidf("code must not be empty")
	}
	known := false
	for _, f := range outputFormats {
		known = known || req.Output.Format == f
	}
	if !known {
		return invalidf("output.format %q is not one of %s", req.Output.Format, strings.Join(outputFormats, ", "))
	}
	if !path.IsAbs(req.Output.Path) {
		return invalidf("output.path %q must be an absolute path", req.Output.Path)
	}
	return nil
}

// BatchTaskRequest is the body of POST /api/batch/status and /api/batch/cancel.
type BatchTaskRequest struct {
	TaskID string `json:"task_id"`
}

// BatchSubmitResult is the data of a submit answer.
type BatchSubmitResult struct {
	TaskID string `json:"task_id"`
}

// BatchStatus is the status object of a batch task. Result and Error are
// null when absent.
type BatchStatus struct {
	TaskID    string       `json:"task_id"`
	Name      string       `json:"name"`
	State     string       `json:"state"`
	Progress  int          `json:"progress"`
	Message   string       `json:"message"`
	CreatedAt string       `json:"created_at"`
	UpdatedAt string       `json:"updated_at"`
	Result    *BatchResult `json:"result"`
	Error     *string      `json:"error"`
}

// BatchResult is the result of a SUCCEEDED batch task.
type BatchResult struct {
	OutputURI string `json:"output_uri"`
}

// batchTask is a submitted task. Its state is computed from the clock when
// read; only a cancellation is stored.
type batchTask struct {
	id      string
	req     BatchSubmitRequest
	created time.Time
	// cancelled is the status frozen at cancellation; nil while not cancelled.
	cancelled *BatchStatus
}

// idemEntry is a remembered Idempotency-Key.
type idemEntry struct {
	bodySum [sha256.Size]byte // of the canonical JSON of the request
	taskID  string
	at      time.Time
}

// status computes t's status object at now.
func (t *batchTask) status(now time.Time, total time.Duration) BatchStatus {
	if t.cancelled != nil {
		return *t.cancelled
	}
	st := BatchStatus{
		TaskID:    t.id,
		Name:      t.req.Name,
		CreatedAt: batchTime(t.created),
	}
	queued := total / 10
	running := total - queued
	elapsed := now.Sub(t.created)
	switch {
	case elapsed < queued:
		st.State, st.Message, st.UpdatedAt = StateQueued, "queued", batchTime(t.created)
	case elapsed < total:
		e := elapsed - queued
		p := int(100 * int64(e) / int64(running)) // 0..99
		st.State, st.Progress = StateRunning, p
		switch {
		case p < 33:
			st.Message = "tiling"
		case p < 66:
			st.Message = "computing"
		default:
			st.Message = "writing"
		}
		// The moment the current progress value was reached.
		reached := (time.Duration(p)*running + 99) / 100
		st.UpdatedAt = batchTime(t.created.Add(queued + reached))
	case strings.Contains(strings.ToLower(t.req.Name), "fail"):
		msg := "simulated failure"
		st.State, st.Progress, st.Message, st.Error = StateFailed, 99, "failed", &msg
		st.UpdatedAt = batchTime(t.created.Add(total))
	default:
		st.State, st.Progress, st.Message = StateSucceeded, 100, "done"
		st.Result = &BatchResult{OutputURI: "sim://" + t.req.Output.Path}
		st.UpdatedAt = batchTime(t.created.Add(total))
	}
	return st
}

// isFinal reports whether state is a final batch task state.
func isFinal(state string) bool {
	return state == StateSucceeded || state == StateFailed || state == StateCancelled
}

// batchTime formats a batch task timestamp: RFC 3339 in UTC.
func batchTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// handleBatchSubmit answers POST /api/batch/submit.
func (s *Simulator) handleBatchSubmit(r *http.Request) (any, *Error) {
	key := r.Header.Get("Idempotency-Key")
	if n := utf8.RuneCountInString(key); n > maxIdempotencyKey {
		return nil, invalidf("Idempotency-Key must be at most %d characters, got %d", maxIdempotencyKey, n)
	}
	var req BatchSubmitRequest
	if e := decodeBody(r, &req); e != nil {
		return nil, e
	}
	if e := req.validate(); e != nil {
		return nil, e
	}
	canonical, err := json.Marshal(req)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "internal error: " + err.Error()}
	}
	sum := sha256.Sum256(canonical)

	now := s.now()
	s.batchMu.Lock()
	defer s.batchMu.Unlock()
	s.sweepKeysLocked(now)
	if key != "" {
		if e, ok := s.idemKeys[key]; ok && now.Sub(e.at) < idempotencyKeyTTL {
			if e.bodySum != sum {
				return nil, &Error{Code: CodeIdempotencyConflict, Message: "idempotency key reused with a different body"}
			}
			s.stats.add(&s.stats.idempotentReplays)
			return BatchSubmitResult{TaskID: e.taskID}, nil
		}
	}
	id := "bt-" + randomHex(8)
	for s.tasks[id] != nil {
		id = "bt-" + randomHex(8)
	}
	s.tasks[id] = &batchTask{id: id, req: req, created: now}
	if key != "" {
		s.idemKeys[key] = idemEntry{bodySum: sum, taskID: id, at: now}
	}
	s.stats.add(&s.stats.batchSubmissions)
	return BatchSubmitResult{TaskID: id}, nil
}

// sweepKeysLocked forgets idempotency keys older than 24 hours, at most once a
// minute. The caller holds batchMu.
func (s *Simulator) sweepKeysLocked(now time.Time) {
	if now.Sub(s.lastSweep) < time.Minute && !now.Before(s.lastSweep) {
		return
	}
	s.lastSweep = now
	for k, e := range s.idemKeys {
		if now.Sub(e.at) >= idempotencyKeyTTL {
			delete(s.idemKeys, k)
		}
	}
}

// handleBatchStatus answers POST /api/batch/status.
func (s *Simulator) handleBatchStatus(r *http.Request) (any, *Error) {
	return s.withTask(r, func(t *batchTask, now time.Time) BatchStatus {
		return t.status(now, s.cfg.BatchDuration)
	})
}

// handleBatchCancel answers POST /api/batch/cancel: a task not yet final
// becomes CANCELLED with its progress frozen; a final one is unchanged.
func (s *Simulator) handleBatchCancel(r *http.Request) (any, *Error) {
	return s.withTask(r, func(t *batchTask, now time.Time) BatchStatus {
		st := t.status(now, s.cfg.BatchDuration)
		if isFinal(st.State) {
			return st
		}
		st.State, st.Message, st.UpdatedAt = StateCancelled, "cancelled", batchTime(now)
		st.Result, st.Error = nil, nil
		t.cancelled = &st
		return st
	})
}

// withTask decodes a task request, finds the task and runs f on it under the
// batch lock.
func (s *Simulator) withTask(r *http.Request, f func(*batchTask, time.Time) BatchStatus) (any, *Error) {
	var req BatchTaskRequest
	if e := decodeBody(r, &req); e != nil {
		return nil, e
	}
	if req.TaskID == "" {
		return nil, invalidf("task_id is required")
	}
	now := s.now()
	s.batchMu.Lock()
	defer s.batchMu.Unlock()
	t := s.tasks[req.TaskID]
	if t == nil {
		return nil, notFoundf("batch task %q not found", req.TaskID)
	}
	return f(t, now), nil
}

// batchRunning counts the batch tasks that are not final now.
func (s *Simulator) batchRunning() int64 {
	now := s.now()
	s.batchMu.Lock()
	defer s.batchMu.Unlock()
	var n int64
	for _, t := range s.tasks {
		if !isFinal(t.status(now, s.cfg.BatchDuration).State) {
			n++
		}
	}
	return n
}

// BatchTaskState returns the state of batch task id now, and whether the
// task exists (for tests that compare a job's end with its batch's).
func (s *Simulator) BatchTaskState(id string) (string, bool) {
	now := s.now()
	s.batchMu.Lock()
	defer s.batchMu.Unlock()
	t := s.tasks[id]
	if t == nil {
		return "", false
	}
	return t.status(now, s.cfg.BatchDuration).State, true
}
