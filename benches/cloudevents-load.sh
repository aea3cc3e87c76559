#!/usr/bin/env bash
# CloudEvents ingress load test: events/s and latency to 202 at 64 keep-alive connections, and
# at 16 (lighter load), against a real `spate serve` on 127.0.0.1, with wrk (Debian's `wrk`).
#
#   benches/cloudevents-load.sh [DURATION_SECONDS]
#
# Uses $SPATE_BIN, else target/release/spate (build it with `cargo build --release -p spate-broker`).
# Then ingress-to-subscriber latency: a trigger delivers to a local subscriber that measures the
# time from the event's `time` (set just before each POST) to its arrival, over 500 events sent
# one at a time.
#
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

echo "== ingress-to-subscriber latency, 500 events one at a time"
sub_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/subscriber.py" <<'PY'
import sys, time, http.server
from datetime import datetime
out = open(sys.argv[2], "a")
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        arrived = time.time()
        self.rfile.read(int(self.headers.get("content-length", 0)))
        sent = datetime.fromisoformat(self.headers["ce-time"].replace("Z", "+00:00")).timestamp()
        out.write(f"{(arrived - sent) * 1000:.3f}\n"); out.flush()
        self.send_response(202); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/subscriber.py" "$sub_port" "$work/latency.txt" &
sub_pid=$!
trap 'kill $pid $sub_pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
curl -sf -X POST "http://$admin/v1/triggers" -H 'content-type: application/json' \
    -d "{\"namespace\":\"bench\",\"name\":\"latency\",\"broker\":\"load\",\"subscriber\":{\"uri\":\"http://127.0.0.1:$sub_port/\"},\"filters\":[{\"exact\":{\"type\":\"com.example.latency\"}}]}" >/dev/null
for _ in $(seq 1 100); do
    curl -s "http://$admin/v1/triggers/bench/latency" | grep -q '"ready":true' && break
    sleep 0.1
done
python3 - "$ingress" <<'PY'
import sys, time, http.client
from datetime import datetime, timezone
conn = http.client.HTTPConnection(sys.argv[1])
for i in range(500):
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    conn.request("POST", "/bench/load", body=b"{}", headers={
        "ce-specversion": "1.0", "ce-id": f"lat-{i}", "ce-source": "/latency",
        "ce-type": "com.example.latency", "ce-time": now, "content-type": "application/json"})
    conn.getresponse().read()
    time.sleep(0.005)
PY
for _ in $(seq 1 100); do [[ $(wc -l <"$work/latency.txt") -ge 500 ]] && break; sleep 0.1; done
sort -n "$work/latency.txt" | awk '{a[NR]=$1} END {printf "delivered %d  p50 %.2f ms  p99 %.2f ms\n", NR, a[int(NR*0.5)], a[int(NR*0.99)]}'
