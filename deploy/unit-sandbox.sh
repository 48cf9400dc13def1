#!/usr/bin/env bash
# Runs katrace.service's ExecStart= the way systemd would confine it, on a
# host where systemd is not PID 1 (CI containers, this project's VMs):
# a private mount namespace with every mount read-only (ProtectSystem=strict,
# ProtectKernelTunables, ProtectControlGroups), a private /tmp, a writable
# LogsDirectory owned by a fresh uid (DynamicUser), and exactly the unit's
# AmbientCapabilities with no_new_privs (setpriv), and /proc/kallsyms
# unreadable when the unit has ProtectKernelTunables=yes. Not reproduced: the
# seccomp filter (deploy/unit-seccomp.py tests it) and IPAddressDeny.
#
#   deploy/unit-sandbox.sh [--unit FILE] [--bin PATH] [--logs DIR] [--caps +x,+y]
#                          [--keep-kallsyms] -- EXTRA ARGS
# The unit's own katrace path is replaced by --bin (default bin/katrace);
# /var/log/katrace is the host directory --logs (default: a new temporary
# directory), seen inside as /run/katrace-sandbox/logs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
unit="$here/katrace.service"
bin="$here/../bin/katrace"
logs=""
extra_caps=""
keep_kallsyms=no
while [ $# -gt 0 ]; do
	case "$1" in
	--unit) unit=$2; shift 2 ;;
	--bin) bin=$2; shift 2 ;;
	--logs) logs=$2; shift 2 ;;
	--caps) extra_caps=$2; shift 2 ;;
	--keep-kallsyms) keep_kallsyms=yes; shift ;;
	--) shift; break ;;
	*) echo "unit-sandbox.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "unit-sandbox.sh: needs root (it builds the sandbox)" >&2; exit 2; }
bin=$(realpath "$bin")
[ -n "$logs" ] || logs=$(mktemp -d /var/tmp/katrace-unit-logs.XXXXXX)
mkdir -p "$logs"

# ExecStart= with its continuation lines joined, without the program path.
exec_start=$(awk '/^ExecStart=/ { on = 1 } on { line = $0; sub(/\\$/, "", line); printf "%s ", line; if ($0 !~ /\\$/) exit }' "$unit" |
	sed 's/^ExecStart=[^ ]*//')
exec_start=${exec_start//\/var\/log\/katrace//run/katrace-sandbox/logs}
caps=$(sed -n 's/^AmbientCapabilities=//p' "$unit" | tr ' ' '\n' | sed 's/^CAP_//' | tr 'A-Z' 'a-z' | sed 's/^/+/' | paste -sd, -)
[ -z "$extra_caps" ] || caps="$caps,$extra_caps"
hide_kallsyms=no
grep -q '^ProtectKernelTunables=yes' "$unit" && [ "$keep_kallsyms" = no ] && hide_kallsyms=yes
uid=61917 # DynamicUser= picks from 61184-65519
chown "$uid:$uid" "$logs"
chmod 0750 "$logs"

echo "sandbox: uid $uid, caps $caps, logs $logs, /proc/kallsyms hidden: $hide_kallsyms" >&2
echo "sandbox: katrace$exec_start $*" >&2
# shellcheck disable=SC2086 # exec_start is a flag list split on purpose
exec unshare --mount --propagation private -- bash -euo pipefail -c '
	bin=$1 logs=$2 uid=$3 caps=$4 hide_kallsyms=$5; shift 5
	mkdir -p /run/katrace-sandbox && mount -t tmpfs -o mode=0755 tmpfs /run/katrace-sandbox
	cp "$bin" /run/katrace-sandbox/katrace
	mkdir /run/katrace-sandbox/logs && mount --bind "$logs" /run/katrace-sandbox/logs
	mount -t tmpfs -o mode=1777 tmpfs /tmp
	if [ "$hide_kallsyms" = yes ]; then
		# As systemd does: an inaccessible file mounted over it.
		install -m 0000 /dev/null /run/katrace-sandbox/inaccessible
		mount --bind /run/katrace-sandbox/inaccessible /proc/kallsyms
	fi
	# Every mount read-only except /proc (ProtectProc is not set), /dev, the
	# logs directory and the private /tmp; then say if one stayed writable.
	writable() { case "$1" in /proc|/proc/*|/dev|/dev/*|/tmp|/run/katrace-sandbox/logs) return 0 ;; esac; return 1; }
	findmnt -rn -o TARGET | while read -r m; do
		writable "$m" || mount -o remount,bind,ro "$m" 2>/dev/null || true
	done
	findmnt -rn -o TARGET,OPTIONS | while read -r m opts; do
		writable "$m" || case ",$opts," in *,ro,*) ;; *) echo "sandbox: $m stayed writable" >&2 ;; esac
	done
	umask 0027
	exec setpriv --reuid="$uid" --regid="$uid" --clear-groups --no-new-privs \
		--inh-caps=-all,"$caps" --ambient-caps=-all,"$caps" --bounding-set=-all,"$caps" \
		/run/katrace-sandbox/katrace "$@"
' sandbox "$bin" "$logs" "$uid" "$caps" "$hide_kallsyms" $exec_start "$@"
