package mcp

import (
	"github.com/google/jsonschema-go/jsonschema"

	"github.com/mcpjobs/mcpjobs/jobs"
)

// viewSchema is the output schema of every tool but list_jobs: the job
// view, derived from jobs.View.
var viewSchema = mustSchema[jobs.View](func(props map[string]*jsonschema.Schema) {
	states := make([]string, len(jobs.ValidStates))
	for i, st := range jobs.ValidStates {
		states[i] = string(st)
	}
	enumOf(props["state"], states...)
	for _, name := range []string{"next_attempt_at", "created_at", "completed_at"} {
		props[name].Format = "date-time"
	}
	props["batch"].Properties["observed_at"].Format = "date-time"
})

// listOutput is list_jobs's answer.
type listOutput struct {
	Jobs  []*jobs.View `json:"jobs" jsonschema:"Job views, newest first."`
	Count int          `json:"count" jsonschema:"How many jobs are listed."`
}

// listSchema is the output schema of list_jobs, derived from listOutput.
var listSchema = mustSchema[listOutput](nil)
