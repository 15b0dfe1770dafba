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
	props["job_id"].Description = "The job's ID; pass it to get_job or cancel_job."
	props["type"].Description = "The job's task type."
	props["result"].Description = "Set when the job completed."
	props["error"].Description = "Why the job failed, or why its last attempt failed while it waits to retry."
	props["batch"].Description = "Batch jobs: the latest known status of the platform task."
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
