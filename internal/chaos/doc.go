// Package chaos holds the reliability suite of mcpjobs: tests that run the
// built binary as real processes (a simulator, two or three workers and the
// MCP server over HTTP) on a real redis-server with its append-only file on,
// drive several hundred jobs through MCP while something breaks, and check
// that every job still ends exactly once.
//
// The scenarios (chaos_test.go) are skipped unless MCPJOBS_CHAOS=1, so that
// `go test ./...` stays fast; run them with
//
//	make chaos
//
// which runs MCPJOBS_CHAOS=1 go test -count=1 -v -run . -timeout 30m
// ./internal/chaos/. Each scenario logs one result row: jobs submitted,
// completed, failed and duplicated (batch tasks the simulator created beyond
// one per submit job), the auth calls the simulator saw, and the duration.
// MCPJOBS_CHAOS_RESULTS names a file to which the rows are also appended as
// a Markdown table.
//
// The malformed-request table (malformed_test.go) is not gated: it posts raw
// JSON-RPC to an in-process MCP server and records the answer to each bad
// request.
//
// docs/reliability.md has the latest results and what is not covered.
package chaos
