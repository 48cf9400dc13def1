#!/usr/bin/env bash
# vmtest/run.sh: run a statically linked Go test binary inside a qemu guest
# booted on Debian's 6.1 cloud kernel, once per attach strategy.
#
#   vmtest/run.sh --test-binary PATH [--strategy S]... [--timeout SECONDS] [-- TEST ARGS...]
#
# Each guest runs `/katrace.test -test.v TEST ARGS...` with KATRACE_TEST_ATTACH=S
# and KATRACE_TEST_PRIVILEGED=1 (other KATRACE_TEST_* variables are passed
# through from the host), and writes the binary's exit status to its
# second serial port, which qemu saves to a file that this script reads.
# Exit status: 0 when every strategy passed, 1 otherwise, 2 on bad usage.
# See vmtest/README.md.
set -euo pipefail

usage() {
	echo "usage: vmtest/run.sh --test-binary PATH [--strategy S]... [--timeout SECONDS] [-- TEST ARGS...]" >&2
	exit 2
}

test_binary=""
strategies=()
timeout=900
test_args=()
while (($#)); do
	case $1 in
	--test-binary) test_binary=${2:?}; shift 2 ;;
	--strategy) strategies+=("${2:?}"); shift 2 ;;
	--timeout) timeout=${2:?}; shift 2 ;;
	--) shift; test_args=("$@"); break ;;
	-h | --help) usage ;;
	*) echo "vmtest: unknown argument: $1" >&2; usage ;;
	esac
done
[[ -f $test_binary ]] || { echo "vmtest: --test-binary: no such file: '$test_binary'" >&2; usage; }
((${#strategies[@]})) || strategies=(fentry)
[[ $timeout =~ ^[0-9]+$ ]] || { echo "vmtest: --timeout needs whole seconds" >&2; usage; }
for s in "${strategies[@]}"; do
	[[ $s =~ ^[a-z0-9_-]+$ ]] || { echo "vmtest: bad strategy name: $s" >&2; usage; }
done
if file "$test_binary" 2>/dev/null | grep -q 'dynamically linked'; then
	echo "vmtest: $test_binary is dynamically linked; build it with CGO_ENABLED=0" >&2
	exit 2
fi

cache=${KATRACE_VMTEST_CACHE:-${XDG_CACHE_HOME:+$XDG_CACHE_HOME/katrace-vmtest}}
cache=${cache:-/var/cache/katrace-vmtest}
# Guest modules to load (their dependencies come along). Only veth is needed
# by the tests today; the tc ones are cheap and save a round trip later.
read -ra modules <<<"${KATRACE_VMTEST_MODULES:-veth sch_netem sch_ingress cls_bpf act_bpf}"
# Host iproute2 tools copied into the guest with their libraries (busybox's
# `ip` has no netns support).
host_tools=(ip ss nstat tc)

log() { echo "vmtest: $*"; }

# Install what is missing (needs root; Debian's apt).
need=()
for pair in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static cpio:cpio \
	ip:iproute2 ss:iproute2 dpkg-deb:dpkg timeout:coreutils; do
	command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if ((${#need[@]})); then
	log "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The kernel: the newest already in the cache, else the newest Debian offers
# (or KATRACE_VMTEST_KERNEL=linux-image-6.1.0-N-cloud-amd64-unsigned).
mkdir -p "$cache"
kver=""
if [[ -n ${KATRACE_VMTEST_KERNEL:-} ]]; then
	kver=${KATRACE_VMTEST_KERNEL#linux-image-}
	kver=${kver%-unsigned}
else
	kver=$(find "$cache" -maxdepth 1 -name '6.1.0-*-cloud-amd64' -printf '%f\n' | sort -V | tail -n1)
fi
if [[ -z $kver ]]; then
	pattern='^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$'
	pkg=$(apt-cache search --names-only "$pattern" | cut -d' ' -f1 | sort -V | tail -n1)
	if [[ -z $pkg ]]; then
		log "apt-get update"
		apt-get update -qq
		pkg=$(apt-cache search --names-only "$pattern" | cut -d' ' -f1 | sort -V | tail -n1)
	fi
	[[ -n $pkg ]] || { log "no $pattern in apt"; exit 1; }
	kver=${pkg#linux-image-}
	kver=${kver%-unsigned}
fi
kdir=$cache/$kver
if [[ ! -f $kdir/boot/vmlinuz-$kver ]]; then
	pkg=linux-image-$kver-unsigned
	if [[ -z $(find "$cache" -maxdepth 1 -name "${pkg}_*.deb") ]]; then
		log "downloading $pkg"
		(cd "$cache" && apt-get download -q "$pkg")
	fi
	deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n1)
	log "extracting $(basename "$deb")"
	tmp=$(mktemp -d "$cache/.extract.XXXXXX")
	dpkg-deb -x "$deb" "$tmp" || { rm -rf "$tmp" "$deb"; log "bad $deb removed, run again"; exit 1; }
	# busybox modprobe wants plain .ko files and a modules.dep (the package
	# has none: depmod runs at install time).
	find "$tmp" -name '*.ko.xz' -exec xz -d {} +
	find "$tmp" -name '*.ko.zst' -exec zstd -q -d --rm {} +
	busybox depmod -b "$tmp" "$kver"
	mv -T "$tmp" "$kdir" 2>/dev/null || rm -rf "$tmp" # lost a race: fine
fi
[[ -f $kdir/boot/vmlinuz-$kver ]] || { log "no kernel in $kdir"; exit 1; }
log "kernel $kver (cache $cache)"

work=$(mktemp -d "${TMPDIR:-/tmp}/katrace-vmtest.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The initramfs: busybox, host iproute2 + libraries, modules, kernel config,
# the test binary and its arguments, and /init.
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,root,etc,boot,vmtest}
cp "$(command -v busybox)" "$root/bin/busybox"
for applet in $(busybox --list-full); do
	[[ -e $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
done
for tool in "${host_tools[@]}"; do
	path=$(command -v "$tool") || continue
	rm -f "$root"/{bin,sbin,usr/bin,usr/sbin}/"$tool"
	cp "$path" "$root/usr/sbin/$tool"
	for lib in $(ldd "$path" | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
cp "$kdir/boot/config-$kver" "$root/boot/config-$kver"

mdir=lib/modules/$kver
mkdir -p "$root/$mdir"
for m in "${modules[@]}"; do
	line=$(grep -E "(^|/)$m\.ko:" "$kdir/$mdir/modules.dep") || { log "no module $m in $kver"; exit 1; }
	echo "$line" >>"$root/$mdir/modules.dep"
	for f in ${line/:/}; do
		mkdir -p "$root/$mdir/$(dirname "$f")"
		cp "$kdir/$mdir/$f" "$root/$mdir/$f"
		grep -E "(^|/)${f##*/}:" "$kdir/$mdir/modules.dep" >>"$root/$mdir/modules.dep"
	done
done
sort -u -o "$root/$mdir/modules.dep" "$root/$mdir/modules.dep"
echo "${modules[*]}" >"$root/vmtest/modules"

cp "$test_binary" "$root/katrace.test"
chmod +x "$root/katrace.test"
# Arguments one per line; KATRACE_TEST_* variables of the host go along
# (except the two this script sets).
: >"$root/vmtest/args"
if ((${#test_args[@]})); then printf '%s\n' "${test_args[@]}" >"$root/vmtest/args"; fi
for name in $(compgen -e | grep '^KATRACE_TEST_' | grep -vx 'KATRACE_TEST_ATTACH\|KATRACE_TEST_PRIVILEGED' || true); do
	printf '%s=%s\n' "$name" "${!name}"
done >"$root/vmtest/env"

cat >"$root/init" <<'EOF'
#!/bin/sh
# PID 1 of the vmtest guest: set up, run the test binary, write its exit status
# to ttyS1 (qemu saves it to a file for run.sh), power off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t securityfs securityfs /sys/kernel/security
# cgroup v2 where the host has it (/sys/fs/cgroup/unified).
mount -t tmpfs cgroup /sys/fs/cgroup
mkdir /sys/fs/cgroup/unified
mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
hostname vmtest
ip link set lo up
for m in $(cat /vmtest/modules); do
	modprobe "$m" || echo "vmtest: modprobe $m failed"
done

while IFS= read -r kv; do export "$kv"; done </vmtest/env
echo "vmtest: guest kernel $(uname -r), KATRACE_TEST_ATTACH=$KATRACE_TEST_ATTACH"
set --
while IFS= read -r arg; do set -- "$@" "$arg"; done </vmtest/args
cd /tmp
KATRACE_TEST_PRIVILEGED=1 /katrace.test -test.v "$@"
status=$?
echo "vmtest: test binary exited with status $status"
echo "$status" >/dev/ttyS1
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet) >"$work/initrd.cpio"
log "initramfs $(du -h "$work/initrd.cpio" | cut -f1)"

# One boot per strategy. The strategy reaches init's environment through the
# kernel command line (unknown NAME=value words become init's environment).
summary=()
failed=0
for s in "${strategies[@]}"; do
	status_file=$work/status-$s
	: >"$status_file"
	log "booting $kver for strategy $s (timeout ${timeout}s)"
	start=$SECONDS
	set +e
	timeout --kill-after=10 "$timeout" qemu-system-x86_64 \
		-accel tcg -cpu max -smp 2 -m 2G \
		-nodefaults -no-user-config -display none -no-reboot \
		-kernel "$kdir/boot/vmlinuz-$kver" -initrd "$work/initrd.cpio" \
		-append "console=ttyS0 loglevel=4 panic=-1 oops=panic random.trust_cpu=on KATRACE_TEST_ATTACH=$s" \
		-serial stdio -serial "file:$status_file" </dev/null 2>&1 |
		sed -u "s/\r\$//; s/^/[$s] /"
	qemu_rc=${PIPESTATUS[0]}
	set -e
	took=$((SECONDS - start))
	status=$(tr -dc '0-9' <"$status_file")
	if ((qemu_rc == 124 || qemu_rc == 137)); then
		result="TIMEOUT (no result after ${timeout}s)"
	elif [[ -z $status ]]; then
		result="FAIL (guest gave no exit status: panic or crash; qemu exit $qemu_rc, ${took}s)"
	elif ((status == 0)); then
		result="PASS (exit 0, ${took}s)"
	else
		result="FAIL (exit $status, ${took}s)"
	fi
	[[ $result == PASS* ]] || failed=1
	summary+=("vmtest: $s $result")
	log "$s $result"
done

echo "vmtest: summary (kernel $kver)"
printf '%s\n' "${summary[@]}"
exit "$failed"
