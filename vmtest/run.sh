#!/usr/bin/env bash
# vmtest/run.sh: run a statically linked Go test binary inside a qemu guest
# booted on Debian's 6.1 cloud kernel (x86 or arm64), once per attach strategy.
#
#   vmtest/run.sh --test-binary PATH [--arch x86|arm64] [--strategy S[:no-kconfig]]...
#                 [--timeout SECONDS] [--summary FILE] [-- TEST ARGS...]
#
# Each guest runs `/katrace.test -test.v TEST ARGS...` with KATRACE_TEST_ATTACH=S
# and KATRACE_TEST_PRIVILEGED=1 (other KATRACE_TEST_* variables are passed
# through from the host), and writes the binary's exit status to a second
# serial port (x86: ttyS1; arm64: a virtio serial port), which qemu saves to
# a file that this script reads. With :no-kconfig the guest has no kernel
# config file at all. Exit status: 0 when every run passed, 1 otherwise,
# 2 on bad usage. See vmtest/README.md.
set -euo pipefail

usage() {
	echo "usage: vmtest/run.sh --test-binary PATH [--arch x86|arm64] [--strategy S[:no-kconfig]]... [--timeout SECONDS] [--summary FILE] [-- TEST ARGS...]" >&2
	exit 2
}

test_binary=""
arch=x86
runs=()
timeout=900
summary_file=""
test_args=()
while (($#)); do
	case $1 in
	--test-binary) test_binary=${2:?}; shift 2 ;;
	--arch) arch=${2:?}; shift 2 ;;
	--strategy) runs+=("${2:?}"); shift 2 ;;
	--timeout) timeout=${2:?}; shift 2 ;;
	--summary) summary_file=${2:?}; shift 2 ;;
	--) shift; test_args=("$@"); break ;;
	-h | --help) usage ;;
	*) echo "vmtest: unknown argument: $1" >&2; usage ;;
	esac
done
[[ -f $test_binary ]] || { echo "vmtest: --test-binary: no such file: '$test_binary'" >&2; usage; }
((${#runs[@]})) || runs=(fentry)
[[ $timeout =~ ^[0-9]+$ ]] || { echo "vmtest: --timeout needs whole seconds" >&2; usage; }
for r in "${runs[@]}"; do
	[[ $r =~ ^[a-z0-9_-]+(:no-kconfig)?$ ]] || { echo "vmtest: bad strategy: $r (want NAME or NAME:no-kconfig)" >&2; usage; }
done

# Per architecture: Debian's name, qemu, the guest's console and library
# directory, and what `file` says about a binary built for it.
case $arch in
x86 | amd64 | x86_64)
	arch=x86 deb_arch=amd64 qemu=qemu-system-x86_64 qemu_pkg=qemu-system-x86
	console=ttyS0 multiarch=x86_64-linux-gnu file_arch='x86-64'
	;;
arm64 | aarch64)
	arch=arm64 deb_arch=arm64 qemu=qemu-system-aarch64 qemu_pkg=qemu-system-arm
	console=ttyAMA0 multiarch=aarch64-linux-gnu file_arch='ARM aarch64'
	;;
*) echo "vmtest: --arch: want x86 or arm64, not '$arch'" >&2; usage ;;
esac
binary_type=$(file -b "$test_binary" 2>/dev/null || true)
if [[ $binary_type == *'dynamically linked'* ]]; then
	echo "vmtest: $test_binary is dynamically linked; build it with CGO_ENABLED=0" >&2
	exit 2
fi
if [[ -n $binary_type && $binary_type != *"$file_arch"* ]]; then
	echo "vmtest: $test_binary is not an $arch binary ($binary_type); build it with GOARCH=$deb_arch" >&2
	exit 2
fi

# With --summary, a run that stops before any guest boots (no download, a
# missing library) still leaves a line there.
booted=""
setup_failed() {
	if [[ -z $booted && -n $summary_file ]]; then
		echo "vmtest: $arch FAIL (stopped before booting a guest)" >>"$summary_file"
	fi
}
trap setup_failed EXIT

cache=${KATRACE_VMTEST_CACHE:-${XDG_CACHE_HOME:+$XDG_CACHE_HOME/katrace-vmtest}}
cache=${cache:-/var/cache/katrace-vmtest}
# Guest modules to load (their dependencies come along): veth for the tests'
# namespaces; tcp_diag for `ss -e`'s socket cookies (without it ss reads
# /proc/net/tcp, whose sk: is a kernel address); the tc ones are cheap and
# save a round trip later; the netfilter ones for the issue-10 NAT path
# (nftables masquerade, `ct state`, `reject with tcp reset`, conntrack -L).
# They are loaded up front because the guest cannot autoload them: the
# kernel asks for aliases such as nft-chain-2-nat, and busybox modprobe has
# only modules.dep.
modules=(veth tcp_diag sch_netem sch_ingress cls_bpf act_bpf
	nft_chain_nat nft_masq nft_ct nft_reject_ipv4 nft_reject_ipv6 nft_reject_inet
	nf_conntrack_netlink)
[[ -z ${KATRACE_VMTEST_MODULES:-} ]] || read -ra modules <<<"$KATRACE_VMTEST_MODULES"
# arm64's virt board has one UART, so the exit status leaves through a
# virtio serial port; the cloud kernel has virtio as modules.
[[ $arch == x86 ]] || modules=(virtio_mmio virtio_console "${modules[@]}")
# Tools copied into the guest with their libraries (busybox's `ip` has no
# netns support; nft and conntrack build the issue-10 NAT path): the host's
# on x86, Debian's arm64 ones on arm64.
tools=(ip ss nstat tc nft conntrack)
# The arm64 packages those tools, their libraries and busybox come from
# (what `readelf -d` names, recursively; a missing one stops the run).
arm64_userland=(iproute2 busybox-static libc6 libbpf1 libelf1 libmnl0 libbsd0 libmd0
	libcap2 zlib1g libselinux1 libpcre2-8-0 libtirpc3 libgssapi-krb5-2 libkrb5-3
	libk5crypto3 libcom-err2 libkrb5support0 libkeyutils1 libxtables12
	nftables libnftables1 libnftnl11 libjansson4 libgmp10 libedit2 libtinfo6
	conntrack libnetfilter-conntrack3 libnfnetlink0)

log() { echo "vmtest: $*"; }

# Install what is missing (needs root; Debian's apt).
need=()
for pair in "$qemu:$qemu_pkg" busybox:busybox-static cpio:cpio readelf:binutils \
	ip:iproute2 ss:iproute2 nft:nftables conntrack:conntrack dpkg-deb:dpkg timeout:coreutils; do
	command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if ((${#need[@]})); then
	log "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
apt_updated=""
apt_update() {
	[[ -z $apt_updated ]] || return 0
	log "apt-get update"
	apt-get update -qq
	apt_updated=1
}
if [[ $deb_arch != "$(dpkg --print-architecture)" ]] && ! dpkg --print-foreign-architectures | grep -qx "$deb_arch"; then
	log "dpkg --add-architecture $deb_arch"
	dpkg --add-architecture "$deb_arch"
	apt_update
fi

# The kernel: the newest already in the cache, else the newest Debian offers.
# KATRACE_VMTEST_KERNEL pins one: 6.1.0-N (either architecture) or a full
# package name linux-image-6.1.0-N-cloud-ARCH-unsigned.
mkdir -p "$cache"
kver=""
if [[ -n ${KATRACE_VMTEST_KERNEL:-} ]]; then
	kver=${KATRACE_VMTEST_KERNEL#linux-image-}
	kver=${kver%-unsigned}
	[[ $kver == *-cloud-* ]] || kver=$kver-cloud-$deb_arch
	[[ $kver == *-cloud-$deb_arch ]] || { log "KATRACE_VMTEST_KERNEL=$KATRACE_VMTEST_KERNEL is not an $arch kernel"; exit 2; }
else
	kver=$(find "$cache" -maxdepth 1 -name "6.1.0-*-cloud-$deb_arch" -printf '%f\n' | sort -V | tail -n1)
fi
if [[ -z $kver ]]; then
	pattern="^linux-image-6\.1\.0-[0-9]+-cloud-$deb_arch-unsigned\$"
	pkg=$(apt-cache search --names-only "$pattern" | cut -d' ' -f1 | sort -V | tail -n1)
	if [[ -z $pkg ]]; then
		apt_update
		pkg=$(apt-cache search --names-only "$pattern" | cut -d' ' -f1 | sort -V | tail -n1)
	fi
	[[ -n $pkg ]] || { log "no $pattern in apt"; exit 1; }
	kver=${pkg#linux-image-}
	kver=${kver%-unsigned}
fi

# Downloads PKG... for $deb_arch into directory $1 (apt-get download keeps
# the .debs; a cached one is not fetched again).
download() {
	local dir=$1 p missing=()
	shift
	for p in "$@"; do
		compgen -G "$dir/${p}_*.deb" >/dev/null || missing+=("$p:$deb_arch")
	done
	((${#missing[@]})) || return 0
	log "downloading ${missing[*]}"
	(cd "$dir" && apt-get download -q "${missing[@]}" 2>&1 | grep -v 'unsandboxed' || true)
	for p in "$@"; do
		compgen -G "$dir/${p}_*.deb" >/dev/null || { log "could not download $p:$deb_arch"; exit 1; }
	done
}

kdir=$cache/$kver
if [[ ! -f $kdir/boot/vmlinuz-$kver ]]; then
	pkg=linux-image-$kver-unsigned
	download "$cache" "$pkg"
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

# The guest's userland comes from a sysroot: the host itself on x86, Debian's
# arm64 packages extracted into the cache on arm64.
if [[ $arch == x86 ]]; then
	sysroot="" sysroot_name="the host"
	busybox_bin=$(command -v busybox)
else
	sysroot=$cache/userland-$deb_arch sysroot_name=$cache/userland-$deb_arch
	# The tree records its package list: a cache extracted from another
	# list (an older run.sh) is extracted again.
	if [[ ! -x $sysroot/bin/busybox || "$(cat "$sysroot/.vmtest-packages" 2>/dev/null)" != "${arm64_userland[*]}" ]]; then
		debs=$cache/debs-$deb_arch
		mkdir -p "$debs"
		download "$debs" "${arm64_userland[@]}"
		tmp=$(mktemp -d "$cache/.extract.XXXXXX")
		for p in "${arm64_userland[@]}"; do
			deb=$(find "$debs" -maxdepth 1 -name "${p}_*.deb" | sort -V | tail -n1)
			dpkg-deb -x "$deb" "$tmp" || { rm -rf "$tmp" "$deb"; log "bad $deb removed, run again"; exit 1; }
		done
		echo "${arm64_userland[*]}" >"$tmp/.vmtest-packages"
		rm -rf "$sysroot.old"
		[[ ! -e $sysroot ]] || mv -T "$sysroot" "$sysroot.old" 2>/dev/null || true
		mv -T "$tmp" "$sysroot" 2>/dev/null || rm -rf "$tmp"
		rm -rf "$sysroot.old"
	fi
	busybox_bin=$sysroot/bin/busybox
fi

# sysroot_path P: P (an absolute path in the sysroot) with every symlink
# resolved inside the sysroot, printed as a host path; fails if missing.
sysroot_path() {
	local p=$1 target n=0
	while [[ -L $sysroot$p ]] && ((n++ < 40)); do
		target=$(readlink "$sysroot$p")
		if [[ $target == /* ]]; then p=$target; else p=$(dirname "$p")/$target; fi
	done
	[[ -e $sysroot$p ]] || return 1
	echo "$sysroot$p"
}

# install_elf P: copies the sysroot's P (absolute path) to the same path in
# the guest, followed by its interpreter and every library it needs, found
# in the sysroot's multiarch directories.
install_elf() {
	local p=$1 src lib dir found interp
	[[ ! -e $root$p ]] || return 0
	src=$(sysroot_path "$p") || { log "$p missing in $sysroot_name"; exit 1; }
	mkdir -p "$root$(dirname "$p")"
	cp "$src" "$root$p"
	interp=$(readelf -lW "$src" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
	[[ -z $interp ]] || install_elf "$interp"
	for lib in $(readelf -dW "$src" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		found=""
		for dir in /lib/$multiarch /usr/lib/$multiarch /lib64 /lib /usr/lib; do
			if [[ -e $sysroot$dir/$lib || -L $sysroot$dir/$lib ]]; then found=$dir/$lib; break; fi
		done
		[[ -n $found ]] || { log "$lib (needed by $p) is not in $sysroot_name; add its package to arm64_userland in vmtest/run.sh"; exit 1; }
		install_elf "$found"
	done
}

work=$(mktemp -d "${TMPDIR:-/tmp}/katrace-vmtest.XXXXXX")
trap 'rm -rf "$work"; setup_failed' EXIT

# The initramfs: busybox, iproute2 + libraries, modules, the test binary and
# its arguments, and /init. The kernel config goes into a second archive,
# appended (the kernel unpacks both) only for runs that keep it.
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,root,etc,boot,vmtest}
cp "$busybox_bin" "$root/bin/busybox"
# The host's busybox lists the applets (Debian's arm64 build of the same
# package has the same ones).
for applet in $(busybox --list-full); do
	[[ -e $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
done
for tool in "${tools[@]}"; do
	path=""
	for dir in /usr/sbin /usr/bin /sbin /bin; do
		if [[ -e $sysroot$dir/$tool ]]; then path=$dir/$tool; break; fi
	done
	[[ -n $path ]] || { log "no $tool in $sysroot_name"; exit 1; }
	rm -f "$root"/{bin,sbin,usr/bin,usr/sbin}/"$tool"
	install_elf "$path"
	[[ $path == /usr/sbin/$tool ]] || mv "$root$path" "$root/usr/sbin/$tool"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
# nft and conntrack name protocols and services (tcp, ssh) through these.
for f in /etc/protocols /etc/services; do
	[[ ! -e $f ]] || cp "$f" "$root$f"
done

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
# Where the exit status goes: x86 has a second UART; arm64 a virtio serial
# port named katrace.status (found by name: there is no udev).
if [[ $arch == x86 ]]; then echo /dev/ttyS1; else echo virtio:katrace.status; fi >"$root/vmtest/status"

cat >"$root/init" <<'EOF'
#!/bin/sh
# PID 1 of the vmtest guest: set up, run the test binary, write its exit status
# to the status port (qemu saves it to a file for run.sh), power off.
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

status_dev=$(cat /vmtest/status)
case $status_dev in
virtio:*)
	name=${status_dev#virtio:}
	status_dev=""
	for i in 1 2 3 4 5 6 7 8 9 10; do
		for port in /sys/class/virtio-ports/*; do
			[ "$(cat "$port/name" 2>/dev/null)" = "$name" ] && status_dev=/dev/${port##*/}
		done
		[ -n "$status_dev" ] && [ -e "$status_dev" ] && break
		sleep 0.5
	done
	[ -n "$status_dev" ] || echo "vmtest: no virtio serial port named $name: the exit status cannot leave the guest"
	;;
esac

while IFS= read -r kv; do export "$kv"; done </vmtest/env
kconfig=none
[ -e "/boot/config-$(uname -r)" ] && kconfig=/boot/config-$(uname -r)
[ -e /proc/config.gz ] && kconfig="$kconfig /proc/config.gz"
echo "vmtest: guest kernel $(uname -r) $(uname -m), KATRACE_TEST_ATTACH=$KATRACE_TEST_ATTACH, kernel config: $kconfig"
if [ "$KATRACE_VMTEST_NO_KCONFIG" = 1 ] && [ "$kconfig" != none ]; then
	# A no-kconfig run with a config file would prove nothing.
	echo "vmtest: this run must have no kernel config file, but has $kconfig"
	status=3
else
	set --
	while IFS= read -r arg; do set -- "$@" "$arg"; done </vmtest/args
	cd /tmp
	{ KATRACE_TEST_PRIVILEGED=1 /katrace.test -test.v "$@"; echo $? >/tmp/vmtest-rc; } 2>&1 | tee /tmp/vmtest-run.log
	status=$(cat /tmp/vmtest-rc)
	# Under TCG a guest runs ~20x slower than the host and timing races show
	# up that the host never sees. A few failed tests run once more, alone:
	# passing then is reported as flaky (the host reads the FLAKY line), a
	# second failure stands. A failure in many tests is a real one: no rerun.
	failed=$(sed -n 's/^--- FAIL: \([^ ]*\) .*/\1/p' /tmp/vmtest-run.log)
	nfailed=$(echo "$failed" | grep -c .)
	if [ "$status" != 0 ] && [ "$nfailed" -ge 1 ] && [ "$nfailed" -le 3 ]; then
		pattern=$(echo "$failed" | tr '\n' '|' | sed 's/|$//')
		echo "vmtest: failed: $pattern; running them once more"
		KATRACE_TEST_PRIVILEGED=1 /katrace.test -test.v "$@" -test.run "^($pattern)\$"
		if [ $? = 0 ]; then
			echo "vmtest: FLAKY: $pattern failed, then passed alone"
			status=0
		else
			echo "vmtest: FAILED AGAIN: $pattern"
		fi
	elif [ "$status" != 0 ]; then
		echo "vmtest: failed: $(echo "$failed" | tr '\n' ' ')"
	fi
fi
echo "vmtest: test binary exited with status $status"
[ -n "$status_dev" ] && echo "$status" >"$status_dev"
sync
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet) >"$work/initrd.cpio"
log "initramfs $(du -h "$work/initrd.cpio" | cut -f1)"
for r in "${runs[@]}"; do
	if [[ $r != *:no-kconfig ]]; then
		mkdir -p "$work/kconfig/boot"
		cp "$kdir/boot/config-$kver" "$work/kconfig/boot/config-$kver"
		(cd "$work/kconfig" && find . | cpio -o -H newc -R 0:0 --quiet) | cat "$work/initrd.cpio" - >"$work/initrd-kconfig.cpio"
		break
	fi
done

# One boot per run. The strategy reaches init's environment through the
# kernel command line (unknown NAME=value words become init's environment).
summary=()
failed=0
booted=1
for r in "${runs[@]}"; do
	s=${r%:no-kconfig}
	label="$arch $s"
	initrd=$work/initrd-kconfig.cpio no_kconfig=0
	if [[ $r == *:no-kconfig ]]; then
		label="$label no-kconfig" initrd=$work/initrd.cpio no_kconfig=1
	fi
	status_file=$work/status-${r/:/-}
	: >"$status_file"
	qemu_args=(-accel tcg -cpu max -smp 2 -m 2G)
	if [[ $arch == x86 ]]; then
		qemu_args+=(-serial stdio -serial "file:$status_file")
	else
		# pauth-impdef: QEMU's own pointer-authentication hash, much cheaper
		# under TCG than the architected one (the guest cannot tell).
		qemu_args=(-M virt -accel tcg -cpu max,pauth-impdef=on -smp 2 -m 2G
			-serial stdio -device virtio-serial-device
			-chardev "file,id=status,path=$status_file"
			-device virtserialport,chardev=status,name=katrace.status)
	fi
	log "booting $kver for $label (timeout ${timeout}s)"
	start=$SECONDS
	set +e
	timeout --kill-after=10 "$timeout" "$qemu" "${qemu_args[@]}" \
		-nodefaults -no-user-config -display none -no-reboot \
		-kernel "$kdir/boot/vmlinuz-$kver" -initrd "$initrd" \
		-append "console=$console loglevel=4 panic=-1 oops=panic random.trust_cpu=on KATRACE_TEST_ATTACH=$s KATRACE_VMTEST_NO_KCONFIG=$no_kconfig" \
		</dev/null 2>&1 |
		sed -u "s/\r\$//; s/^/[$label] /" | tee "$work/console-${r/:/-}.log"
	qemu_rc=${PIPESTATUS[0]}
	set -e
	took=$((SECONDS - start))
	status=$(tr -dc '0-9' <"$status_file")
	if ((qemu_rc == 124 || qemu_rc == 137)); then
		result="TIMEOUT (no result after ${timeout}s)"
	elif [[ -z $status ]]; then
		result="FAIL (guest gave no exit status: panic or crash; qemu exit $qemu_rc, ${took}s)"
	elif ((status == 0)); then
		result="PASS (${took}s)"
		flaky=$(sed -n 's/.*vmtest: FLAKY: \([^ ]*\) .*/\1/p' "$work/console-${r/:/-}.log" | tail -n1)
		[[ -z $flaky ]] || result="PASS (${took}s; flaky: ${flaky//|/ } failed once, passed on a rerun)"
	else
		result="FAIL (exit $status, ${took}s; failed: $(sed -n 's/.*\] --- FAIL: \([^ ]*\) .*/\1/p' "$work/console-${r/:/-}.log" | sort -u | tr '\n' ' '))"
	fi
	[[ $result == PASS* ]] || failed=1
	summary+=("vmtest: $label $result")
	log "$label $result"
done

echo "vmtest: summary ($arch, kernel $kver)"
printf '%s\n' "${summary[@]}"
if [[ -n $summary_file ]]; then printf '%s\n' "${summary[@]}" >>"$summary_file"; fi
exit "$failed"
