// Package store is the Redis store of job records, the one place that
// reads and writes them, in the words of package jobs.
//
// Client is the MCP side's handle: it enqueues jobs through asynq (with
// the owner's index and, for a caller's own platform token, the job's
// credential), reads a job's view, waits for its end (woken by the
// announcements on EndedChannel), lists an owner's jobs in a constant
// number of round trips, cancels jobs and answers the status of platform
// batch tasks.
//
// A batch job's life is a record per job (record.go): its state machine,
// moved by compare-and-set Lua scripts. The worker makes every transition
// (BeginBatchJob, SetBatchTask, ObserveBatchJob, AdvanceBatchJob); a
// cancel only records the owner's intent, except before the submit. The
// worker also reads and drops credentials (Credential, DropCredential),
// checks whether a cancelled run was cancelled by its owner (IsCancelled),
// records a job's result with its end announcement (RecordEnd) and
// announces other ends (Announce).
package store
