// Package bench holds the benchmark scenarios that `mcpjobs bench` runs and
// prints as JSON. Each scenario measures mcpjobs against a baseline in the
// same run, so that its figures are ratios that survive a noisy machine.
package bench
