// Package web is the operator site of mcpjobs: the asynqmon dashboard at
// /monitoring behind HTTP basic auth, with task payloads and results shown
// as JSON whose secrets are redacted; /healthz and /readyz for
// orchestrators; and /metrics, asynq's queue metrics for Prometheus.
//
// It reads and steers the queues in Redis only; it never talks to the
// workers or the MCP server. `mcpjobs web` serves it on its own address
// and `mcpjobs dev` mounts it beside MCP.
package web
