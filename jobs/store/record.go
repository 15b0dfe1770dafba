package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/jobs"
)

// A batch job has one life, its batch's, kept in one Redis hash per job:
// its state machine. The worker makes every transition with a
// compare-and-set script; a cancel_job only records an intent (and, for a
// job whose submit has not started, ends it). Terminal states are final.
//
//	pending ──begin──▶ active ──observe(final)──▶ completed | failed | cancelled
//	   │                  │
//	   └──cancel──▶ cancelled   (active: cancel=1, carried out by the worker)
//
// An active job without task_id is submitting (or retrying a submit whose
// reply was lost); with task_id, a chain of scheduled checks follows the
// platform task (poll-<job>-<round>), each round enqueueing the next.

// Fields of a batch job record.
const (
	fState      = "state"
	fOwner      = "owner"
	fCreatedAt  = "created_at"
	fDeadline   = "deadline"
	fCredential = "credential"
	fTaskID     = "task_id"
	fCancel     = "cancel"
	fRound      = "round"
	fStatus     = "status"
	fPState     = "platform_state"
	fProgress   = "progress"
	fObservedAt = "observed_at"
	fError      = "error"
	fEndedAt    = "ended_at"
)

// batchTTL is how long an active batch job's record is kept: past its
// deadline, so a batch followed for its whole life stays readable.
const batchTTL = jobs.BatchDeadline + 24*time.Hour

func batchJobKey(jobID string) string { return "mcpjobs:batchjob:" + jobID }

// taskJobKey maps a platform task ID to the batch job that submitted it.
func taskJobKey(taskID string) string { return "mcpjobs:task:" + taskID }

// BatchJob is the record of a batch job.
type BatchJob struct {
	JobID     string
	State     jobs.State
	Owner     string
	CreatedAt time.Time
	// Deadline is when following the batch stops.
	Deadline time.Time
	// Credential is true when the job calls with its caller's own token.
	Credential bool
	// TaskID is the platform's task ID, once the submit answered.
	TaskID string
	// CancelRequested is the owner's intent, carried out by the worker.
	CancelRequested bool
	// Round is the number of the latest scheduled check.
	Round int
	// Status is the platform's latest status object, as it answered it.
	Status        json.RawMessage
	PlatformState string
	Progress      int
	ObservedAt    time.Time
	// Error says why the job failed or was cancelled.
	Error   *jobs.Failure
	EndedAt time.Time
}

// parseBatchJob reads a record from HGETALL's flat answer; nil when empty.
func parseBatchJob(jobID string, v any) (*BatchJob, error) {
	flat, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("jobs: batch record of %s: unexpected answer %T", jobID, v)
	}
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		s, _ := flat[i+1].(string)
		m[k] = s
	}
	return batchJobOf(jobID, m)
}

func batchJobOf(jobID string, m map[string]string) (*BatchJob, error) {
	if len(m) == 0 {
		return nil, nil
	}
	r := &BatchJob{
		JobID:           jobID,
		State:           jobs.State(m[fState]),
		Owner:           m[fOwner],
		Credential:      m[fCredential] == "1",
		TaskID:          m[fTaskID],
		CancelRequested: m[fCancel] == "1",
		PlatformState:   m[fPState],
	}
	if r.State == "" {
		r.State = jobs.StatePending
	}
	r.CreatedAt, _ = time.Parse(time.RFC3339Nano, m[fCreatedAt])
	r.Deadline, _ = time.Parse(time.RFC3339Nano, m[fDeadline])
	r.ObservedAt, _ = time.Parse(time.RFC3339Nano, m[fObservedAt])
	r.EndedAt, _ = time.Parse(time.RFC3339Nano, m[fEndedAt])
	r.Round, _ = strconv.Atoi(m[fRound])
	r.Progress, _ = strconv.Atoi(m[fProgress])
	if s := m[fStatus]; s != "" {
		r.Status = json.RawMessage(s)
	}
	if e := m[fError]; e != "" {
		var f jobs.Failure
		if err := json.Unmarshal([]byte(e), &f); err != nil {
			return nil, fmt.Errorf("jobs: batch record of %s: error field: %w", jobID, err)
		}
		r.Error = &f
	}
	return r, nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// LoadBatchJob returns a batch job's record, or nil when it has none (the
// job has not started, or has expired).
func LoadBatchJob(ctx context.Context, rdb redis.UniversalClient, jobID string) (*BatchJob, error) {
	m, err := rdb.HGetAll(ctx, batchJobKey(jobID)).Result()
	if err != nil {
		return nil, err
	}
	return batchJobOf(jobID, m)
}

// beginScript starts a batch job: pending (or no record) → active, unless
// its owner cancelled it first. It answers the record.
//
// KEYS[1]: the record
// ARGV[1]: owner  ARGV[2]: created_at  ARGV[3]: deadline  ARGV[4]: "1" with a caller token  ARGV[5]: TTL ms
var beginScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if (not st or st == 'pending') and redis.call('HGET', KEYS[1], 'cancel') ~= '1' then
  redis.call('HSET', KEYS[1], 'state', 'active', 'owner', ARGV[1], 'created_at', ARGV[2],
    'deadline', ARGV[3], 'credential', ARGV[4], 'round', '0')
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return redis.call('HGETALL', KEYS[1])`)

// BeginBatchJob moves a batch job from pending to active before its submit
// and answers its record: a record in another state means the submit must
// not start (cancelled before it ran) or has started before (a retry).
func BeginBatchJob(ctx context.Context, rdb redis.UniversalClient, jobID, owner string, createdAt, deadline time.Time, credential bool) (*BatchJob, error) {
	cred := ""
	if credential {
		cred = "1"
	}
	v, err := beginScript.Run(ctx, rdb, []string{batchJobKey(jobID)}, owner, formatTime(createdAt), formatTime(deadline), cred, batchTTL.Milliseconds()).Result()
	if err != nil {
		return nil, err
	}
	return parseBatchJob(jobID, v)
}

// setTaskScript records the platform task ID of an active batch job, and
// which job the task belongs to.
//
// KEYS[1]: the record  KEYS[2]: the task's job key
// ARGV[1]: task ID  ARGV[2]: job ID  ARGV[3]: TTL ms
var setTaskScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') == 'active' then
  redis.call('HSET', KEYS[1], 'task_id', ARGV[1])
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
return redis.call('HGETALL', KEYS[1])`)

// SetBatchTask records the platform task that a batch job's submit got,
// before anything else happens to it, and answers the record (whose
// CancelRequested says whether to cancel the task at once).
func SetBatchTask(ctx context.Context, rdb redis.UniversalClient, jobID, taskID string) (*BatchJob, error) {
	v, err := setTaskScript.Run(ctx, rdb, []string{batchJobKey(jobID), taskJobKey(taskID)}, taskID, jobID, batchTTL.Milliseconds()).Result()
	if err != nil {
		return nil, err
	}
	return parseBatchJob(jobID, v)
}

// observeScript records what the worker saw of an active batch job's
// platform task and, when End is set, ends the job: the state becomes
// final, the caller's token is deleted, the record is kept for retention.
//
// KEYS[1]: the record  KEYS[2]: the job's credential  KEYS[3]: the task's job key
// ARGV[1]: status JSON or ""  ARGV[2]: platform state  ARGV[3]: progress  ARGV[4]: observed_at
// ARGV[5]: end state or ""  ARGV[6]: error JSON or ""  ARGV[7]: ended_at  ARGV[8]: retention ms
var observeScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'active' then
  return redis.call('HGETALL', KEYS[1])
end
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], 'status', ARGV[1], 'platform_state', ARGV[2], 'progress', ARGV[3], 'observed_at', ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'state', ARGV[5], 'ended_at', ARGV[7])
  if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[6]) end
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
  redis.call('PEXPIRE', KEYS[3], ARGV[8])
  redis.call('DEL', KEYS[2])
end
return redis.call('HGETALL', KEYS[1])`)

// Observation is what a worker learned about a batch job's platform task.
type Observation struct {
	// Status is the platform's status object; nil when the worker learned
	// nothing new of the task (a failure before the submit).
	Status json.RawMessage
	// End is the job's final state when it ends now, else "".
	End jobs.State
	// Error says why it failed or was cancelled.
	Error *jobs.Failure
}

// PlatformStatus is the part of the platform's status object the job
// record keeps apart.
type PlatformStatus struct {
	State    string  `json:"state"`
	Progress int     `json:"progress"`
	Message  string  `json:"message"`
	Error    *string `json:"error"`
}

// ObserveBatchJob records an observation of an active batch job and
// answers the record. It changes nothing on a job that is not active.
func ObserveBatchJob(ctx context.Context, rdb redis.UniversalClient, rec *BatchJob, obs Observation, retention time.Duration) (*BatchJob, error) {
	var ps PlatformStatus
	if obs.Status != nil {
		if err := json.Unmarshal(obs.Status, &ps); err != nil {
			return nil, fmt.Errorf("jobs: batch status of %s is not an object: %w", rec.TaskID, err)
		}
	}
	var errJSON []byte
	if obs.Error != nil {
		errJSON, _ = json.Marshal(obs.Error)
	}
	now := formatTime(time.Now())
	keys := []string{batchJobKey(rec.JobID), credentialKey(rec.JobID), taskJobKey(rec.TaskID)}
	v, err := observeScript.Run(ctx, rdb, keys, string(obs.Status), ps.State, ps.Progress, now,
		string(obs.End), string(errJSON), now, retention.Milliseconds()).Result()
	if err != nil {
		return nil, err
	}
	return parseBatchJob(rec.JobID, v)
}

// advanceScript reserves the next round of an active batch job's checks:
// round n → n+1, only from n, so a round that runs twice schedules its
// successor once.
//
// KEYS[1]: the record  ARGV[1]: n
var advanceScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') == 'active' and tonumber(redis.call('HGET', KEYS[1], 'round') or '0') == tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'round', tostring(tonumber(ARGV[1]) + 1))
end
return redis.call('HGETALL', KEYS[1])`)

// AdvanceBatchJob moves an active batch job's round from n to n+1 and
// answers the record; the caller enqueues check n+1 when Round is n+1.
func AdvanceBatchJob(ctx context.Context, rdb redis.UniversalClient, jobID string, n int) (*BatchJob, error) {
	v, err := advanceScript.Run(ctx, rdb, []string{batchJobKey(jobID)}, n).Result()
	if err != nil {
		return nil, err
	}
	return parseBatchJob(jobID, v)
}

// cancelScript records its owner's intent to cancel a batch job. A job
// whose submit has not started ends cancelled here (its caller's token is
// deleted); an active one is left to the worker. A final job is unchanged.
//
// KEYS[1]: the record  KEYS[2]: the job's credential
// ARGV[1]: owner  ARGV[2]: created_at  ARGV[3]: now  ARGV[4]: error JSON  ARGV[5]: retention ms
var cancelScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'completed' or st == 'failed' or st == 'cancelled' then
  return redis.call('HGETALL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'cancel', '1')
if not st or st == 'pending' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'owner', ARGV[1], 'created_at', ARGV[2], 'ended_at', ARGV[3], 'error', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('DEL', KEYS[2])
end
return redis.call('HGETALL', KEYS[1])`)

// errBatchNotFound is a platform task that no batch job of mcpjobs submitted.
var errBatchNotFound = errors.New("jobs: no batch job submitted this task")

// jobOfTask returns the batch job that submitted platform task taskID.
func (c *Client) jobOfTask(ctx context.Context, taskID string) (string, error) {
	id, err := c.rdb.Get(ctx, taskJobKey(taskID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", errBatchNotFound
	}
	return id, err
}

// EndOf maps a final platform state to the job's final state and failure:
// SUCCEEDED completes, FAILED fails with the platform's error, CANCELLED
// cancels. It answers "" for a state that is not final.
func EndOf(ps PlatformStatus) (jobs.State, *jobs.Failure) {
	switch ps.State {
	case "SUCCEEDED":
		return jobs.StateCompleted, nil
	case "FAILED":
		msg := ps.Message
		if ps.Error != nil && *ps.Error != "" {
			msg = *ps.Error
		}
		return jobs.StateFailed, &jobs.Failure{Class: "batch_failed", Message: "the batch task failed: " + msg}
	case "CANCELLED":
		return jobs.StateCancelled, &jobs.Failure{Class: "cancelled", Message: "the batch task was cancelled"}
	}
	return "", nil
}
