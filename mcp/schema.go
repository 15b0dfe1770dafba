package mcp

import "encoding/json"

// viewSchema is the output schema of every tool: the job view.
var viewSchema = json.RawMessage(`{
  "type": "object",
  "properties": {
    "job_id": {"type": "string", "description": "The job's ID; pass it to get_job or cancel_job."},
    "type": {"type": "string", "description": "The job's task type."},
    "state": {"type": "string", "enum": ["pending", "scheduled", "active", "retry", "completed", "failed", "cancelled"]},
    "result": {
      "type": "object",
      "description": "Set when the job completed.",
      "properties": {
        "data": {"description": "The platform's answer."},
        "execution_time_ms": {"type": "integer"},
        "attempts": {"type": "integer"}
      }
    },
    "error": {
      "type": "object",
      "description": "Why the job failed, or why its last attempt failed while it waits to retry.",
      "properties": {
        "code": {"type": "integer", "description": "The platform's error code, when it gave one."},
        "class": {"type": "string"},
        "message": {"type": "string"}
      },
      "required": ["message"]
    },
    "attempts": {"type": "integer"},
    "next_attempt_at": {"type": "string", "format": "date-time"},
    "created_at": {"type": "string", "format": "date-time"},
    "completed_at": {"type": "string", "format": "date-time"},
    "batch": {
      "type": "object",
      "description": "Batch jobs: the latest known status of the platform task.",
      "properties": {
        "task_id": {"type": "string"},
        "status": {"description": "The platform's status object."},
        "state": {"type": "string"},
        "final": {"type": "boolean"},
        "observed_at": {"type": "string", "format": "date-time"},
        "observed_by": {"type": "string"}
      }
    }
  },
  "required": ["job_id", "state"]
}`)

// listSchema is the output schema of list_jobs.
var listSchema = json.RawMessage(`{
  "type": "object",
  "properties": {
    "jobs": {"type": "array", "items": {"type": "object"}, "description": "Job views, newest first."},
    "count": {"type": "integer"}
  },
  "required": ["jobs", "count"]
}`)
