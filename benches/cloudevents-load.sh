#!/usr/bin/env bash
# CloudEvents ingress load test: events/s and latency to 202 at 64 keep-alive connections, and
# at 16 (lighter load), against a real `spate serve` on 127.0.0.1, with wrk (Debian's `wrk`).
#
#   benches/cloudevents-load.sh [DURATION_SECONDS]
#
# Uses $SPATE_BIN, else target/release/spate (build it with `cargo build --release -p spate-broker`).
# Every request is a distinct binary-mode CloudEvent (ce-id from a per-thread counter) with a
# 70-byte JSON body, appended with acks=all semantics before the 202.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
duration="${1:-10}"
bin="${SPATE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/spate}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[[ -x "$bin" ]] || { echo "no spate binary at $bin" >&2; exit 1; }

work="$(mktemp -d)"
controller_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --data-dir "$work/data" --kafka-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --cloudevents-listen 127.0.0.1:0 --controller-listen "127.0.0.1:$controller_port" \
    --controller-voters "0@127.0.0.1:$controller_port" >"$work/spate.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do [[ -f "$work/data/listeners.json" ]] && break; sleep 0.1; done
listeners="$(cat "$work/data/listeners.json")"
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$listeners" "$1"; }
admin="$(field admin)"; ingress="$(field cloudevents)"
curl -sf -X POST "http://$admin/v1/brokers" -H 'content-type: application/json' \
    -d '{"namespace":"bench","name":"load","partitions":4}' >/dev/null

cat >"$work/post.lua" <<'LUA'
local counter = 0
local thread_id = tostring(math.random(1, 1000000000))
wrk.method = "POST"
wrk.body = '{"orderId":"o-12345","customer":"c-987","total":129.95,"items":3}'
wrk.headers["ce-specversion"] = "1.0"
wrk.headers["ce-source"] = "/load"
wrk.headers["ce-type"] = "com.example.load"
wrk.headers["content-type"] = "application/json"
request = function()
  counter = counter + 1
  wrk.headers["ce-id"] = thread_id .. "-" .. counter
  return wrk.format(nil, nil, nil, nil)
end
done = function(summary, latency, requests)
  io.write(string.format("events/s %.0f  p50 %.2f ms  p99 %.2f ms  non-2xx %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status))
end
LUA
for connections in 64 16; do
    echo "== $connections connections, ${duration}s"
    wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/post.lua" "http://$ingress/bench/load" | tail -1
done
