#!/usr/bin/env bash
# The docs/deploy.md shipping example, for real: katrace writes NDJSON with
# -w, an rsyslogd running deploy/rsyslog-katrace.conf (paths and port moved
# to a temporary directory) reads it with imfile and forwards it with omfwd
# to a TCP listener on 127.0.0.1; every record must arrive byte for byte.
# Needs root, rsyslogd, python3, and bin/katrace and bin/churn built.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d /tmp/katrace-rsyslog.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir "$dir/work"
sed -e "s|/var/log/katrace/katrace.json|$dir/katrace.json|" -e "s|port=\"16514\"|port=\"$port\"|" \
	deploy/rsyslog-katrace.conf > "$dir/30-katrace.conf"
cat > "$dir/rsyslog.conf" <<CONF
global(workDirectory="$dir/work" maxMessageSize="64k")
include(file="$dir/30-katrace.conf")
CONF
rsyslogd -N1 -f "$dir/rsyslog.conf" >/dev/null 2>&1 || { rsyslogd -N1 -f "$dir/rsyslog.conf"; exit 1; }

# The collector: appends whatever arrives.
python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
open(sys.argv[2] + ".ready", "w").close()
with open(sys.argv[2], "ab", buffering=0) as out:
    while True:
        c, _ = s.accept()
        while (b := c.recv(65536)):
            out.write(b)
' "$port" "$dir/received.ndjson" & pids+=($!)
# rsyslog must find the collector listening: a refused connection makes it
# retry, and a retried batch can arrive twice (omfwd over TCP delivers at
# least once).
for _ in $(seq 100); do [ -e "$dir/received.ndjson.ready" ] && break; sleep 0.1; done
[ -e "$dir/received.ndjson.ready" ] || { echo "the collector did not start listening within 10s"; exit 1; }
rsyslogd -n -f "$dir/rsyslog.conf" -i "$dir/rsyslogd.pid" 2>"$dir/rsyslogd.log" & pids+=($!)

bin/katrace trace -o json --all -w "$dir/katrace.json" --duration 6s 2>"$dir/katrace.err" & kp=$!
for _ in $(seq 100); do [ -s "$dir/katrace.json" ] && break; sleep 0.1; done
bin/churn -duration 2s -clients 2 >/dev/null
wait "$kp" || { echo "katrace failed:"; cat "$dir/katrace.err"; exit 1; }

want=$(wc -l < "$dir/katrace.json")
for _ in $(seq 120); do
	[ "$(wc -l < "$dir/received.ndjson" 2>/dev/null || echo 0)" -ge "$want" ] && break
	sleep 0.5
done
got=$(wc -l < "$dir/received.ndjson" 2>/dev/null || echo 0)
echo "katrace wrote $want records; the collector received $got through rsyslog (imfile → omfwd tcp)"
if ! cmp -s "$dir/katrace.json" "$dir/received.ndjson"; then
	echo "records differ:"; cmp "$dir/katrace.json" "$dir/received.ndjson" || true
	cat "$dir/rsyslogd.log"; exit 1
fi
python3 -c '
import json, sys, collections
types = collections.Counter(json.loads(l)["type"] for l in open(sys.argv[1]))
print("identical; every line parses as JSON; types:", dict(types))
' "$dir/received.ndjson"
