package jobs

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Size limits of tool arguments.
const (
	// MaxCodeBytes caps sql and code.
	MaxCodeBytes = 256 << 10
	// DefaultMaxRows is the platform's default row limit of a query.
	DefaultMaxRows = 1000
	// MaxMaxRows caps max_rows.
	MaxMaxRows = 100000
	// MaxIdempotencyKey caps a caller's idempotency_key.
	MaxIdempotencyKey = 128
	// MaxNameLength caps a batch task's name.
	MaxNameLength = 200
	// MaxOutputFormat caps a batch task's output.format.
	MaxOutputFormat = 32
	// MaxOutputPath caps a batch task's output.path.
	MaxOutputPath = 1024
)

// Languages are the code-to-DAG languages.
var Languages = []string{"javascript", "python"}

// checkText checks a required text argument against a size limit.
func checkText(field, v string, limit int) error {
	switch {
	case strings.TrimSpace(v) == "":
		return FieldErrorf(field, "is empty")
	case len(v) > limit:
		return FieldErrorf(field, "is %d bytes; the limit is %d", len(v), limit)
	case !utf8.ValidString(v):
		return FieldErrorf(field, "is not valid UTF-8")
	}
	return nil
}

// QueryPayload runs SQL on the platform's big-data engine
// (POST /api/bigquery/query).
type QueryPayload struct {
	SQL string `json:"sql"`
	// MaxRows caps the rows returned (default 1000).
	MaxRows int `json:"max_rows"`
}

// TaskType implements Payload.
func (QueryPayload) TaskType() string { return TypeBigQuery }

// Validate implements Payload. A zero MaxRows means the default.
func (p QueryPayload) Validate() error {
	if err := checkText("sql", p.SQL, MaxCodeBytes); err != nil {
		return err
	}
	if p.MaxRows < 0 || p.MaxRows > MaxMaxRows {
		return FieldErrorf("max_rows", "must be between 1 and %d, got %d", MaxMaxRows, p.MaxRows)
	}
	return nil
}

// WithDefaults returns the payload with MaxRows set when it was zero.
func (p QueryPayload) WithDefaults() QueryPayload {
	if p.MaxRows == 0 {
		p.MaxRows = DefaultMaxRows
	}
	return p
}

// DAGPayload compiles code into the platform's dataflow graph
// (POST /api/dag/compile).
type DAGPayload struct {
	Code     string `json:"code"`
	Language string `json:"language"`
}

// TaskType implements Payload.
func (DAGPayload) TaskType() string { return TypeDAG }

// Validate implements Payload.
func (p DAGPayload) Validate() error {
	if err := checkText("code", p.Code, MaxCodeBytes); err != nil {
		return err
	}
	for _, l := range Languages {
		if p.Language == l {
			return nil
		}
	}
	return FieldErrorf("language", "must be one of %s, got %q", strings.Join(Languages, ", "), Truncate(p.Language, 40))
}

// BatchOutput is where a batch task writes its result.
type BatchOutput struct {
	Format string `json:"format" jsonschema:"Output format, e.g. GeoTIFF, COG, GeoJSON, CSV, Parquet."`
	Path   string `json:"path" jsonschema:"Output path, e.g. /data/out/aspect.tif."`
}

// BatchSubmitPayload submits a batch task (POST /api/batch/submit).
type BatchSubmitPayload struct {
	Name   string      `json:"name"`
	Code   string      `json:"code"`
	Output BatchOutput `json:"output"`
}

// TaskType implements Payload.
func (BatchSubmitPayload) TaskType() string { return TypeBatchSubmit }

// Validate implements Payload.
func (p BatchSubmitPayload) Validate() error {
	if err := checkText("name", p.Name, MaxNameLength); err != nil {
		return err
	}
	if err := checkText("code", p.Code, MaxCodeBytes); err != nil {
		return err
	}
	if err := checkText("output.format", p.Output.Format, MaxOutputFormat); err != nil {
		return err
	}
	if err := checkText("output.path", p.Output.Path, MaxOutputPath); err != nil {
		return err
	}
	return nil
}

// platformTaskIDPattern is the shape of a platform batch task ID accepted
// by the tools.
var platformTaskIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// CheckTaskID validates a platform batch task ID argument.
func CheckTaskID(field, id string) error {
	if id == "" {
		return FieldErrorf(field, "is empty; give the platform's batch task ID, e.g. bt-7f3a…")
	}
	if !platformTaskIDPattern.MatchString(id) {
		return FieldErrorf(field, "%q is not a batch task ID (letters, digits, _ . : -; at most 128)", Truncate(id, 40))
	}
	return nil
}

// BatchTaskPayload names a platform batch task: the body of status jobs.
type BatchTaskPayload struct {
	TaskID string `json:"task_id"`
}

// StatusPayload gives BatchTaskPayload the task type of a status job.
type StatusPayload struct{ BatchTaskPayload }

// TaskType returns TypeBatchStatus.
func (StatusPayload) TaskType() string { return TypeBatchStatus }

// Validate implements Payload.
func (p BatchTaskPayload) Validate() error { return CheckTaskID("task_id", p.TaskID) }

// PollPayload is the body of one scheduled check of a batch job.
type PollPayload struct {
	// JobID is the batch job followed.
	JobID string `json:"job_id"`
	// TaskID is its platform task.
	TaskID string `json:"task_id"`
	// Round numbers the checks of one job from 1.
	Round int `json:"round"`
}

// PollTaskID is the task ID of check round n of a batch job: one ID per
// round, so that a round that runs twice cannot fork the chain.
func PollTaskID(jobID string, n int) string { return fmt.Sprintf("poll-%s-%d", jobID, n) }
