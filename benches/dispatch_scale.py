#!/usr/bin/env python3
"""Analysis for benches/dispatch_scale.sh.

queue BASE KEY N DUE_IN: queues N calls due DUE_IN seconds from now (16 requests in flight);
prints the due time.
report TRACE CALLS RATE KILLED_AT: from the carrier's SIPp message trace and the stored calls
(`id status attempts` per line): INVITE dialogs per call, calls dialled more often than they
had attempts (double dials), calls never dialled or not completed (lost), and INVITEs per
second: over the whole batch after its first second (the pacer's one-second burst), per node,
and per one-second bucket.
"""
import concurrent.futures
import datetime
import json
import re
import statistics
import sys
import urllib.request


def queue(base, key, n, due_in):
    due = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=int(due_in)))
    due = due.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")

    def one(i):
        body = json.dumps({"to": f"+1202{5550000 + i % 10000:07d}", "schedule_at": due}).encode()
        req = urllib.request.Request(f"{base}/v1/calls/outbound", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {key}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            assert r.status == 201, r.status

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(int(n))))
    print(due)


BANNER = re.compile(r"^-+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$")


def invites(trace):
    """(time, voxbridge call id, sip call-id, sender) per INVITE dialog, first sighting."""
    seen, out = set(), []
    at, fields, in_invite = None, {}, False
    for line in open(trace, errors="replace"):
        line = line.rstrip("\r\n")
        m = BANNER.match(line)
        if m:
            at = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            in_invite = False
            continue
        if line.startswith("INVITE "):
            in_invite, fields = True, {}
            continue
        if not in_invite:
            continue
        if ":" not in line:
            in_invite = False
            continue
        name, value = line.split(":", 1)
        name = name.strip().lower()
        if name in ("x-voxbridge-call-id", "call-id", "via"):
            fields.setdefault(name, value.strip())
        if len(fields) == 3:
            in_invite = False
            if fields["call-id"] not in seen:
                seen.add(fields["call-id"])
                sender = fields["via"].split()[1].split(";")[0]
                out.append((at, fields["x-voxbridge-call-id"], fields["call-id"], sender))
    return out


def rate_report(label, times, cap):
    times = sorted(times)
    if len(times) < 3:
        print(f"{label}: {len(times)} INVITEs")
        return
    start = times[0]
    # The pacer starts with one second's worth at once; the rate it holds is what follows.
    steady = [t for t in times if t >= start + 1.0]
    span = steady[-1] - steady[0] if len(steady) > 1 else 0
    mean = (len(steady) - 1) / span if span > 0 else float("nan")
    buckets = {}
    for t in steady:
        buckets[int(t - start)] = buckets.get(int(t - start), 0) + 1
    full = [buckets.get(s, 0) for s in range(min(buckets), max(buckets))]  # whole seconds only
    within = sum(1 for c in full if abs(c - cap) <= 2) if cap else 0
    print(f"{label}: {len(times)} INVITEs over {times[-1] - start:.1f} s; first second {len(times) - len(steady)}; "
          f"then {mean:.2f}/s mean", end="")
    if full:
        q = statistics.quantiles(full, n=20) if len(full) > 1 else [full[0]] * 19
        print(f"; per second p5 {q[0]:.0f} / median {statistics.median(full):.0f} / p95 {q[18]:.0f} "
              f"/ max {max(full)}", end="")
        if cap:
            print(f"; {within} of {len(full)} seconds within {cap} ± 2", end="")
    print()


def report(trace, calls_file, rate, killed_at):
    rate, killed_at = int(rate), float(killed_at)
    found = invites(trace)
    calls = {}
    for line in open(calls_file):
        parts = line.split()
        if len(parts) == 3:
            calls[parts[0]] = (parts[1], int(parts[2]))
    per_call = {}
    for _, call, _, _ in found:
        per_call[call] = per_call.get(call, 0) + 1
    statuses = {}
    for status, _ in calls.values():
        statuses[status] = statuses.get(status, 0) + 1
    never = [c for c in calls if c not in per_call]
    double = [c for c, n in per_call.items() if n > calls.get(c, ("", 1))[1]]
    retried = sum(1 for _, a in calls.values() if a > 1)
    print(f"calls: {len(calls)} stored {statuses}; dialled {len(per_call)}; never dialled {len(never)}; "
          f"not completed {len(calls) - statuses.get('completed', 0)}")
    print(f"double dials (more INVITE dialogs than attempts): {len(double)}; calls with a second attempt: {retried}; "
          f"INVITE dialogs {len(found)}")
    rate_report("all nodes", [t for t, *_ in found], rate)
    senders = sorted({s for *_, s in found})
    for s in senders:
        times = [t for t, _, _, who in found if who == s]
        rate_report(f"node {s}", times, 0)
        if killed_at:
            after = [t for t in times if t > killed_at]
            if after and len(senders) > 1:
                rate_report(f"node {s} after the kill", after, 0)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"queue": queue, "report": report}[cmd](*args)
