#!/usr/bin/env python3
"""Builds tracer/testdata/issue10/*.json from the recorded captures.

Each capture's raw.ndjson holds katrace's own kernel events (struct event
as the Go type katraceEvent, json-encoded field by field) from a run of the
scenario on kernel 6.18. The kernel_facts of kernel-order.txt (bpftrace on
the same run) add the tcp_sock fields the event does not carry yet; they
are written into the events under the Go names the new struct event
members will have (FirstTxNs, Retransmits, UserTimeoutMs, LastWriteBytes),
so the correlator tests fill them once the members exist.

The 6.1 ordering of an ETIMEDOUT death (tcp_write_err: sk_err, then the
error report, then purge and CLOSE) is derived from the 6.18 recording
(tcp_done_with_error: sk_err, purge, CLOSE, then the error report): the
error event moves before CLOSE, in state ESTABLISHED, with the same facts.
"""
import copy, json, os, sys

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "..", "tracer", "testdata", "issue10")

def load(capture, cookies):
    evs = []
    for line in open(os.path.join(here, capture, "raw.ndjson")):
        e = json.loads(line)
        if e["Cookie"] in cookies:
            evs.append(e)
    return evs

def write(name, doc):
    with open(os.path.join(out, name), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")

def close_facts(capture, cookie):
    """The bpftrace CLOSE line of the socket: first_tx_mstamp (µs),
    icsk_retransmits and icsk_user_timeout at CLOSE."""
    for line in open(os.path.join(here, capture, "kernel-order.txt")):
        if "cookie=%d " % cookie in line and " STATE " in line and ">7 " in line:
            f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            return {"FirstTxNs": int(f["ftx"]) * 1000, "Retransmits": int(f["retr"]),
                    "UserTimeoutMs": int(f["uto"])}
    sys.exit("no CLOSE line for cookie %d in %s" % (cookie, capture))

def cookie_of_close(capture, dport):
    for line in open(os.path.join(here, capture, "raw.ndjson")):
        e = json.loads(line)
        if e["Kind"] == 3 and e["Dport"] == dport and e["SkErr"] == 110:
            return e["Cookie"]
    sys.exit("no ETIMEDOUT close in " + capture)

def with_facts(evs, kinds, **facts):
    for e in evs:
        if e["Kind"] in kinds:
            e.update(facts)
    return evs

def order_61(evs):
    """ERROR before CLOSE, in ESTABLISHED, as tcp_write_err does on 6.1."""
    closes = [i for i, e in enumerate(evs) if e["Kind"] == 3]
    errs = [i for i, e in enumerate(evs) if e["Kind"] == 6]
    if not closes or not errs:
        sys.exit("no CLOSE/ERROR pair")
    c, r = closes[0], errs[0]
    err = copy.deepcopy(evs[r])
    err["State"] = evs[c]["OldState"]
    err["TsNs"] = evs[c]["TsNs"] - 20000
    rest = [e for i, e in enumerate(evs) if i != r]
    # The CLOSE state event (kind 1, state 7) comes right before the CLOSE.
    at = c - 1 if c > 0 and rest[c - 1]["Kind"] == 1 and rest[c - 1]["State"] == 7 else c
    return rest[:at] + [err] + rest[at:]

KINDS = {1: "state", 2: "idle_fin", 3: "close", 4: "reset_sent", 5: "reset_received", 6: "error", 7: "keepalive"}

def about(evs):
    """idle before the stalled write and how long it went unacknowledged."""
    c = next(e for e in evs if e["Kind"] == 3)
    unacked = (c["TsNs"] - c["FirstTxNs"]) // 1000000
    return c["SinceAckMs"] - unacked, unacked

def doc(scenario, source, kernel, events, want):
    return {"scenario": scenario, "source": source, "kernel": kernel,
            "kinds": KINDS, "events": events, "want": want}

# 1. TCP_USER_TIMEOUT 3 s, write dropped by a NAT that forgot the flow.
ut_cookie = cookie_of_close("1-ut", 7001)
ut = with_facts(load("1-ut", {ut_cookie}), {3, 6}, **close_facts("1-ut", ut_cookie))
idle, unacked = about(ut)
want_ut = {"type": "close", "cause": "retransmit_timeout", "error": "ETIMEDOUT", "after_idle": True,
           "idle_ms_about": idle, "unacked_ms_about": unacked, "retransmits": ut[-1]["Retransmits"],
           "user_timeout_ms": 3000, "shown_by_default": True}
write("retransmit_timeout_user_timeout_6.18.json",
      doc("TCP_USER_TIMEOUT 3s client; its write after 3 s idle dropped by a NAT that forgot the flow",
          "recorded (docs/issue10-captures/1-ut)", "6.18: CLOSE (sk_err=110 already set), then the error report 40 us later", ut, want_ut))
write("retransmit_timeout_user_timeout_6.1.json",
      doc("the same, in 6.1's order", "derived from the 6.18 recording", "6.1: error report (state ESTABLISHED), then CLOSE",
          order_61(copy.deepcopy(ut)), want_ut))

# 1b. tcp_retries2=3, no user timeout.
r2_cookie = cookie_of_close("1-r2", 7001)
r2 = with_facts(load("1-r2", {r2_cookie}), {3, 6}, **close_facts("1-r2", r2_cookie))
idle, unacked = about(r2)
want_r2 = dict(want_ut, idle_ms_about=idle, unacked_ms_about=unacked, user_timeout_ms=None,
               retransmits=r2[-1]["Retransmits"])
write("retransmit_timeout_retries2_6.18.json",
      doc("tcp_retries2=3; write after 3 s idle dropped by a NAT", "recorded (docs/issue10-captures/1-r2)",
          "6.18: CLOSE then the error report", r2, want_r2))
write("retransmit_timeout_retries2_6.1.json",
      doc("the same, in 6.1's order", "derived from the 6.18 recording", "6.1: error report, then CLOSE",
          order_61(copy.deepcopy(r2)), want_r2))

# 2 and 4. redis-server's keepalive probe answered by the NAT's reset.
redis = load("2-redis", {714213})
write("keepalive_probe_nat_reset.json",
      doc("redis-server (tcp-keepalive 6) behind... its probe to a NAT that forgot the flow draws the NAT's RST",
          "recorded (docs/issue10-captures/2-redis); the keepalive event carries no owner (Pid 0) today",
          "6.1 and 6.18 alike: RST received, CLOSE (sk_err=104), error report",
          redis,
          {"keepalive_probe": {"pid_from": "the reset's owner (remembered for the socket)"},
           "close": {"cause": "reset_received", "after_keepalive": True},
           "text_mentions": ["NAT", "load balancer", "firewall", "restart"],
           "summary": {"forgotten_flows": 1, "forgotten_keepalive_idle_ms": 6000}}))
client = load("2-redis", {714212})
write("reset_after_idle_nat_reset.json",
      doc("the redis client's next write after the NAT forgot the flow draws the NAT's RST",
          "recorded (docs/issue10-captures/2-redis)", "RST received, CLOSE, error report",
          client, {"close": {"cause": "reset_after_idle", "idle_ms_about": 7188},
                   "summary": {"forgotten_flows": 1, "forgotten_keepalive_off": 1}}))

# 3. Goodbye then close (Go server: 116 bytes after 3 s idle, FIN 2 ms later).
gb = load("3-goodbye-go", {2805469, 2805470})
for e in gb:
    if e["Cookie"] == 2805470 and e["Kind"] == 1 and e["State"] == 4:
        e.update(FirstTxNs=1684647206000, LastWriteBytes=116)
write("goodbye_then_close.json",
      doc("server writes a 116-byte goodbye after 3 s of silence and closes 2 ms later; the client writes 345 ms after",
          "recorded (docs/issue10-captures/3-goodbye-go); PostgreSQL's idle_session_timeout gives the same sequence (3-goodbye-pg)",
          "6.1 and 6.18 alike",
          gb,
          {"server": {"idle_close": {"side": "local", "idle_ms_about": 3000, "goodbye_bytes": 116},
                      "close": {"cause": "idle_close_local", "idle_ms_about": 3000, "goodbye_bytes": 116}},
           "client": {"idle_close": {"side": "remote", "idle_ms_about": 3000, "goodbye_bytes": 116},
                      "close": {"cause": "stale_reuse", "peer_idle_ms_about": 3000, "reuse_gap_ms_about": 345}},
           "summary": {"idle_closes_local": 1, "idle_closes_remote": 1, "idle_ms_p50_about": 3000}}))
print("wrote", sorted(os.listdir(out)))

# 3'. The same sequence as the fixed kernel program sends it (derived):
# the FIN handler recognises the goodbye and sends EV_IDLE_FIN with the
# idle time before the goodbye as fin_idle_ms and its size as
# goodbye_bytes; later events of the socket carry the same fin_idle_ms
# (socket storage).
def fixed_goodbye(evs):
    out, idle, size = [], {}, {}
    for e in evs:
        e = copy.deepcopy(e)
        c = e["Cookie"]
        if e["Kind"] == 1 and e["State"] in (4, 8) and c not in idle:
            if e["State"] == 4:  # local FIN: goodbye sent at FirstTxNs
                idle[c] = e["SinceRecvMs"] - (e["TsNs"] - e["FirstTxNs"]) // 1000000
                size[c] = e["LastWriteBytes"]
            else:                # remote FIN: goodbye is what arrived, unread
                idle[c] = e["SinceSendMs"] - e["SinceRecvMs"]
                size[c] = e["Unread"] - 1
            fin = copy.deepcopy(e)
            fin["Kind"] = 2
            fin["FinIdleMs"], fin["GoodbyeBytes"] = idle[c], size[c]
            out.append(fin)
        if c in idle:
            e["FinIdleMs"], e["GoodbyeBytes"] = idle[c], size[c]
        out.append(e)
    return out

write("goodbye_then_close_fixed_kernel.json",
      doc("goodbye_then_close.json as the fixed kernel program sends it",
          "derived from the recording: EV_IDLE_FIN added at the first FIN, fin_idle_ms = idle before the goodbye",
          "6.1 and 6.18 alike", fixed_goodbye(gb),
          json.load(open(os.path.join(out, "goodbye_then_close.json")))["want"]))
