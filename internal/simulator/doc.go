// Package simulator is an in-process stand-in for the intranet geospatial
// platform that mcpjobs' workers call. It implements the platform contract
// (docs/intranet-api.md): the auth endpoint with its one-live-token-per-account
// rule, the compute operations (slope-aspect, big-data query, code to DAG) and
// batch tasks with idempotent submission and a clock-driven lifecycle.
//
// A *Simulator is an http.Handler. Tests run it behind httptest.NewServer;
// the "mcpjobs sim" subcommand serves it on an address, with its settings
// bound to flags by RegisterFlags.
//
// Besides the contract it answers a few test-only routes, never to be exposed
// beyond a test or rehearsal network (they carry no authentication):
//
//	GET  /sim/stats   counters (Stats) as plain JSON
//	POST /sim/expire  ends every token now; answers {"expired": n}
//	GET  /sim/faults  current fault rates and latencies
//	POST /sim/faults  changes fault rates and latencies at runtime; fields
//	                  left out keep their value, e.g. {"auth_down": true}
//
// Faults (gateway 5xx and 429, busy and rate-limited envelopes, dropped
// connections, replies lost after the request was processed, an auth endpoint
// that is down) are injected at configurable rates, so the client's retry,
// refresh and idempotency logic can be exercised end to end.
//
// The simulator never logs a token or a password; where a token must be told
// apart it logs a fingerprint, the first 8 hex digits of its SHA-256.
package simulator
