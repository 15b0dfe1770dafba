// Package jobs is the contract between the MCP side and the workers: task
// type names, payloads and their validation, enqueue options per job type,
// the job view (state, result, error, owner) read through asynq's
// Inspector, a batch job's record (its state machine, record.go), the
// announcement of ended jobs on Redis pub/sub, and waiting for a job to
// end.
//
// Both sides import jobs; neither imports the other. They meet only in Redis.
package jobs
