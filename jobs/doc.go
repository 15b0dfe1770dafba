// Package jobs is the vocabulary that the MCP side and the workers share:
// task type names and queues, payloads and their validation, enqueue
// options per job type (Spec), the headers every task carries, the job view
// and its states, results and failures, and the errors both sides answer.
//
// It holds no connection to Redis. The Redis store of job records (enqueue,
// read, wait, list, cancel, a batch job's record and its compare-and-set
// transitions, the caller's credential, the announcement of ended jobs) is
// package jobs/store, its one owner. Both sides import jobs and jobs/store;
// neither imports the other. They meet only in Redis.
package jobs
