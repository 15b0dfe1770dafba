#!/usr/bin/env bash
# scripts/dashboard-screenshot.sh: a screenshot of the asynqmon dashboard,
# for docs/img/dashboard.png. Not a CI step; run it by hand:
#
#   bash scripts/dashboard-screenshot.sh [out.png]     # default docs/img/dashboard.png
#
# It installs Debian's chromium when it is missing (as root), builds
# mcpjobs (or uses $MCPJOBS_BIN), starts `mcpjobs dev` on ports of its own
# with its own throw-away Redis and a login (WEB_USERNAME/WEB_PASSWORD),
# checks the login, makes the simulator slow and flaky, enqueues a few jobs
# of every kind over MCP (curl, JSON-RPC), and takes a headless screenshot
# of /monitoring/ with the login in the URL
# (http://user:password@127.0.0.1:PORT/monitoring/), which headless
# chromium accepts for the page and the dashboard's API calls alike.
#
# Environment: MCPJOBS_BIN (a built mcpjobs; default: go build), MCP_PORT
# (18080), SIM_PORT (18081), WEB_PORT (18090), SETTLE_SECONDS (4.5: how long
# the jobs run before the picture).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-docs/img/dashboard.png}
MCP_PORT=${MCP_PORT:-18080}
SIM_PORT=${SIM_PORT:-18081}
WEB_PORT=${WEB_PORT:-18090}
SETTLE_SECONDS=${SETTLE_SECONDS:-4.5}
user=operator
pass=shot-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

step() { printf '==> %s\n' "$*"; }

if ! command -v chromium >/dev/null 2>&1; then
	step "installing chromium"
	if [ "$(id -u)" -ne 0 ]; then
		echo "chromium is not on PATH: apt-get install chromium (as root)" >&2
		exit 1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

tmp=$(mktemp -d)
dev_pid=
cleanup() {
	if [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; then
		kill -TERM "$dev_pid" 2>/dev/null || true
		wait "$dev_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

bin=${MCPJOBS_BIN:-}
if [ -z "$bin" ]; then
	step "go build ./cmd/mcpjobs"
	go build -o "$tmp/mcpjobs" ./cmd/mcpjobs
	bin=$tmp/mcpjobs
fi

step "mcpjobs dev (MCP :$MCP_PORT, simulator :$SIM_PORT, dashboard :$WEB_PORT)"
# Its own Redis, simulator and identities: none of the caller's.
env -u REDIS_URL -u INTRANET_BASE_URL -u INTRANET_AUTH_URL -u MCP_AUTH_TOKENS -u MCP_AUTH_TOKENS_FILE \
	WEB_USERNAME="$user" WEB_PASSWORD="$pass" LOG_LEVEL=warn LOG_FORMAT=text \
	"$bin" dev --addr "127.0.0.1:$MCP_PORT" --sim-addr "127.0.0.1:$SIM_PORT" \
	--web-addr "127.0.0.1:$WEB_PORT" --state-dir "$tmp/state" >"$tmp/dev.out" 2>"$tmp/dev.err" &
dev_pid=$!

web=http://127.0.0.1:$WEB_PORT
for _ in $(seq 150); do
	curl -fsS -o /dev/null "$web/readyz" 2>/dev/null && break
	if ! kill -0 "$dev_pid" 2>/dev/null; then
		echo "mcpjobs dev stopped:" >&2
		cat "$tmp/dev.out" "$tmp/dev.err" >&2
		exit 1
	fi
	sleep 0.2
done
curl -fsS -o /dev/null "$web/readyz" || {
	echo "the dashboard did not answer on $web" >&2
	cat "$tmp/dev.err" >&2
	exit 1
}

step "login check"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code "$web/monitoring/")" = 401 ] || { echo "/monitoring/ without login did not answer 401" >&2; exit 1; }
[ "$(code -u "$user:wrong" "$web/monitoring/")" = 401 ] || { echo "a wrong password was not refused" >&2; exit 1; }
[ "$(code -u "$user:$pass" "$web/monitoring/api/queues")" = 200 ] || { echo "the login was refused" >&2; exit 1; }

step "a slow, flaky simulator"
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$SIM_PORT/sim/faults" -d '{"latency_ms": 3000, "busy": 0.3}'

step "enqueueing jobs over MCP"
mcp=http://127.0.0.1:$MCP_PORT/mcp
rpc() {
	curl -fsS -D "$tmp/headers" -o "$tmp/reply" \
		-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
		${session:+-H "Mcp-Session-Id: $session"} -d "$1" "$mcp"
}
session=
rpc '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"dashboard-screenshot","version":"1"}}}'
session=$(sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: *\([^[:space:]]*\).*/\1/p' "$tmp/headers")
rpc '{"jsonrpc":"2.0","method":"notifications/initialized"}'
id=1
call() { # tool, arguments (JSON)
	id=$((id + 1))
	rpc "{\"jsonrpc\":\"2.0\",\"id\":$id,\"method\":\"tools/call\",\"params\":{\"name\":\"$1\",\"arguments\":$2}}"
	if grep -q '"isError":true' "$tmp/reply"; then
		echo "  $1: tool error: $(head -c 300 "$tmp/reply")" >&2
	fi
}
for i in $(seq 0 7); do
	call coverage_aspect_analysis "{\"coverage_id\":\"dem_30m\",\"bbox\":[116.$i,39.8,116.$((i + 1)),39.9],\"wait_seconds\":0}"
done
call run_big_query "{\"sql\":\"SELECT tile, mean_m FROM elevation_stats WHERE coverage_id = 'dem_30m'\",\"max_rows\":100,\"wait_seconds\":0}"
call run_big_query '{"sql":"SELECT region, class, area_km2 FROM landcover WHERE year = 2025","max_rows":100,"wait_seconds":0}'
# A table the platform does not have: a job that fails for good (archived).
call run_big_query '{"sql":"SELECT * FROM no_such_table","wait_seconds":0}'
call execute_code_to_dag '{"code":"print(1)","language":"python","wait_seconds":0}'
for i in 1 2; do
	call submit_batch_task "{\"name\":\"slope-$i\",\"code\":\"slope(dem_30m)\",\"output\":{\"format\":\"GeoTIFF\",\"path\":\"/out/slope-$i.tif\"},\"wait_seconds\":0}"
done

step "letting them run ${SETTLE_SECONDS}s"
sleep "$SETTLE_SECONDS"

step "screenshot -> $out"
mkdir -p "$(dirname "$out")"
# --virtual-time-budget lets the dashboard's API calls finish before the picture.
chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
	--disable-component-update --disable-sync --no-first-run --hide-scrollbars \
	--user-data-dir="$tmp/chromium" --window-size=1400,900 --virtual-time-budget=8000 \
	--screenshot="$tmp/shot.png" "http://$user:$pass@127.0.0.1:$WEB_PORT/monitoring/" \
	>"$tmp/chromium.log" 2>&1 || { cat "$tmp/chromium.log" >&2; exit 1; }
mv "$tmp/shot.png" "$out"
step "ok: $out"
