// Package worker runs jobs: the asynq server, one handler per task type, the
// retry policy that turns the platform's error classes into retries, waits
// and failures, and the batch lifecycle (batch.go): a batch job's submit,
// its chain of scheduled checks and the cancels it carries out. The platform client is in worker/intranet; the
// platform's stand-in for tests and dev is internal/simulator.
package worker
