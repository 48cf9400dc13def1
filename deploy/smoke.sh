#!/usr/bin/env bash
# CI's deploy checks, each short: the unit's command line under its own
# confinement, and the image. Both start katrace with --duration, wait (with
# a deadline) for its start record, make one loopback connection that ends
# in a RST, and check that katrace reported it and ended cleanly.
#   deploy/smoke.sh unit    deploy/unit-sandbox.sh on deploy/katrace.service,
#                           and its /metrics on 127.0.0.1:9917
#   deploy/smoke.sh image   katrace check and trace in katrace:latest
#                           (podman --runtime runc, as on the CI machines),
#                           and trace under the unit's SystemCallFilter=
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d /var/tmp/katrace-smoke.XXXXXX)
trap 'rm -rf "$dir"' EXIT

# reset_while_tracing FILE: once FILE has katrace's start record, a client
# closes with SO_LINGER 0, so both ends see a reset.
reset_while_tracing() {
	for _ in $(seq 200); do grep -q '"type":"start"' "$1" 2>/dev/null && break; sleep 0.1; done
	grep -q '"type":"start"' "$1" || { echo "no start record in $1 within 20s"; return 1; }
	python3 -c '
import socket, struct
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
try: a.recv(1)
except ConnectionResetError: pass
print("reset made on 127.0.0.1 port", s.getsockname()[1])
'
}

# expect_reset FILE: the reset and the end record are in katrace's output.
expect_reset() {
	grep -q '"type":"reset".*"laddr":"127.0.0.1"' "$1" || { echo "no loopback reset in katrace's output:"; cat "$1"; return 1; }
	grep '"type":"end"' "$1" || { echo "no end record:"; cat "$1"; return 1; }
}

case "${1:-}" in
unit)
	mkdir "$dir/logs"
	deploy/unit-sandbox.sh --logs "$dir/logs" -- --duration 8s 2>"$dir/stderr" & pid=$!
	reset_while_tracing "$dir/logs/katrace.json"
	metrics=$(python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9917/metrics", timeout=5).read().decode())')
	grep -E '^katrace_(events_total|events_lost_total|build_info)' <<<"$metrics" | head -5
	grep -q '^katrace_events_total' <<<"$metrics" || { echo "no katrace_events_total on 127.0.0.1:9917/metrics"; exit 1; }
	wait "$pid" || { echo "katrace under the unit's confinement failed:"; cat "$dir/stderr"; exit 1; }
	expect_reset "$dir/logs/katrace.json"
	;;
image)
	deploy/seccomp-profile.py >"$dir/seccomp.json"
	run=(podman --runtime runc run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024
		--pid=host --net=host --uts=host --read-only --user 65534:65534
		--cap-drop=all --cap-add=BPF,PERFMON,NET_ADMIN,SYS_PTRACE
		--security-opt seccomp="$dir/seccomp.json"
		-v /sys/kernel/btf:/sys/kernel/btf:ro -v /sys/fs/cgroup:/sys/fs/cgroup:ro katrace:latest)
	"${run[@]}" check
	"${run[@]}" trace --duration 6s -o json >"$dir/trace.json" 2>"$dir/stderr" & pid=$!
	reset_while_tracing "$dir/trace.json"
	wait "$pid" || { echo "katrace trace in the image failed:"; cat "$dir/stderr"; exit 1; }
	expect_reset "$dir/trace.json"
	# Again under katrace.service's SystemCallFilter= (systemd is not PID 1
	# here, so this is where that filter gets tested).
	deploy/unit-seccomp.py >"$dir/unit-seccomp.json"
	run=("${run[@]/#seccomp=*/seccomp=$dir/unit-seccomp.json}")
	"${run[@]}" trace --duration 6s -o json >"$dir/trace-unit-filter.json" 2>"$dir/stderr" & pid=$!
	reset_while_tracing "$dir/trace-unit-filter.json"
	wait "$pid" || { echo "katrace trace under the unit's system call filter failed:"; cat "$dir/stderr"; exit 1; }
	expect_reset "$dir/trace-unit-filter.json"
	;;
*)
	echo "usage: deploy/smoke.sh unit|image" >&2
	exit 2
	;;
esac
