#!/usr/bin/env python3
"""Writes katrace.service's SystemCallFilter= as an OCI seccomp profile: the
allowed system calls (groups expanded by `systemd-analyze syscall-filter`,
denied ones taken out), everything else EPERM. Running katrace in a container
under it tests the unit's filter where systemd is not PID 1 (deploy/smoke.sh).

    deploy/unit-seccomp.py [UNIT] > bin/unit-seccomp.json
"""
import json
import re
import subprocess
import sys


def expand(name, seen):
    """The system calls of name: itself, or a @group's members, recursively."""
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", name],
                         capture_output=True, text=True, check=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:  # the first line names the group
        word = line.split("#")[0].strip()
        if word:
            calls |= expand(word, seen)
    return calls


unit_path = sys.argv[1] if len(sys.argv) > 1 else "deploy/katrace.service"
with open(unit_path) as f:
    unit = f.read()
allowed, denied = set(), set()
for m in re.finditer(r"^SystemCallFilter=(~?)(.*)$", unit, re.M):
    calls = set()
    for word in m.group(2).split():
        calls |= expand(word, set())
    (denied if m.group(1) else allowed).update(calls)
if not allowed:
    sys.exit(f"unit-seccomp.py: no allow list in {unit_path}")

json.dump({
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
    "syscalls": [{"names": sorted(allowed - denied), "action": "SCMP_ACT_ALLOW"}],
}, sys.stdout, indent=1)
sys.stdout.write("\n")
