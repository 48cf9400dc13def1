#!/usr/bin/env python3
"""Writes the container engine's default seccomp profile with bpf() allowed
to holders of CAP_BPF and perf_event_open() to holders of CAP_PERFMON.

Older profiles (podman's containers-common before 0.57, Debian 12's podman
4.3) allow both system calls only with CAP_SYS_ADMIN, so katrace would need
SYS_ADMIN or seccomp=unconfined; with this profile it needs neither.

    deploy/seccomp-profile.py [DEFAULT_PROFILE] > bin/katrace-seccomp.json
    podman run --security-opt seccomp=bin/katrace-seccomp.json ...
"""
import json
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/containers/seccomp.json"
try:
    with open(src) as f:
        profile = json.load(f)
except (OSError, ValueError) as e:
    sys.exit(f"seccomp-profile.py: reading the default profile: {e}")

allowed = {"bpf": "CAP_BPF", "perf_event_open": "CAP_PERFMON"}
# The old profiles also deny both explicitly to everyone without
# CAP_SYS_ADMIN; a deny rule wins over an allow rule, so take them out of it.
for rule in profile["syscalls"]:
    if rule.get("action") != "SCMP_ACT_ALLOW" and "CAP_SYS_ADMIN" in rule.get("excludes", {}).get("caps", []):
        rule["names"] = [n for n in rule["names"] if n not in allowed]
profile["syscalls"] = [r for r in profile["syscalls"] if r["names"]]
for name, cap in allowed.items():
    profile["syscalls"].append({
        "names": [name],
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": [cap]},
    })
json.dump(profile, sys.stdout, indent=1)
sys.stdout.write("\n")
