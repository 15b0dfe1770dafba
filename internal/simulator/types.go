package simulator

import "fmt"

// Envelope codes of the platform contract (docs/intranet-api.md).
const (
	CodeOK                  = 0
	CodeInvalidParams       = 40001
	CodeTokenExpired        = 40003
	CodeNotFound            = 40004
	CodeIdempotencyConflict = 40009
	CodeInvalidCredentials  = 40101
	CodeRateLimited         = 42900
	CodeInternal            = 50000
	CodeBusy                = 50300
)

// Error is a business error the simulator answers inside the envelope:
// HTTP 200 with a non-zero code and a message.
type Error struct {
	Code    int
	Message string
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("code %d: %s", e.Code, e.Message) }

// invalidf builds a 40001 (invalid parameters) error.
func invalidf(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidParams, Message: fmt.Sprintf(format, args...)}
}

// notFoundf builds a 40004 (not found) error.
func notFoundf(format string, args ...any) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// AspectRequest is the body of POST /api/coverage/aspect.
type AspectRequest struct {
	CoverageID string    `json:"coverage_id"`
	BBox       []float64 `json:"bbox"`
	ScaleM     float64   `json:"scale_m"` // 0 means the default, 30
}

// AspectResult is the data of a slope-aspect answer.
type AspectResult struct {
	CoverageID    string             `json:"coverage_id"`
	BBox          []float64          `json:"bbox"`
	ScaleM        float64            `json:"scale_m"`
	CellCount     int                `json:"cell_count"`
	FlatFraction  float64            `json:"flat_fraction"`
	MeanAspectDeg float64            `json:"mean_aspect_deg"`
	Histogram     map[string]float64 `json:"histogram"`
}

// QueryRequest is the body of POST /api/bigquery/query.
type QueryRequest struct {
	SQL     string `json:"sql"`
	MaxRows int    `json:"max_rows"` // 0 means the default, 1000
}

// QueryResult is the data of a big-data query answer.
type QueryResult struct {
	Columns      []string `json:"columns"`
	Rows         [][]any  `json:"rows"`
	RowCount     int      `json:"row_count"`
	Truncated    bool     `json:"truncated"`
	BytesScanned int64    `json:"bytes_scanned"`
}

// DAGRequest is the body of POST /api/dag/compile.
type DAGRequest struct {
	Code     string `json:"code"`
	Language string `json:"language"` // javascript or python
}

// DAGResult is the data of a code-to-DAG answer.
type DAGResult struct {
	DAG       DAG `json:"dag"`
	NodeCount int `json:"node_count"`
}

// DAG is a compiled dataflow graph.
type DAG struct {
	Nodes []DAGNode   `json:"nodes"`
	Edges [][2]string `json:"edges"`
}

// DAGNode is one operation of a DAG.
type DAGNode struct {
	ID   string `json:"id"`
	Op   string `json:"op"`
	Args []any  `json:"args"`
}
