// Package worker runs jobs: the asynq server, one handler per task type, and
// the retry policy that turns the platform's error classes into retries,
// waits and failures. The platform client is in worker/intranet and its
// simulator in worker/simulator.
package worker
