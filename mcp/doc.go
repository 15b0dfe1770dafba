// Package mcp is the MCP server of mcpjobs (built on mark3labs/mcp-go): the
// tools, their argument schemas and validation, caller identity, and the
// stdio and streamable HTTP transports. Tools never call the platform: they
// enqueue jobs (package jobs) and answer with the job view.
package mcp
