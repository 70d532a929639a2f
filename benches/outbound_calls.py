#!/usr/bin/env python3
"""Analysis for benches/outbound_calls.sh.

count BASE KEY: outbound calls completed or failed so far.
queue BASE KEY N: queues N calls at once (16 requests in flight) and prints their ids.
report BASE KEY CAPTURE SIP_PORT SINGLES BATCH: per group of call ids (files, one per line):
completed / failed (with end reasons); for the singles, due time (created_at; no schedule_at)
-> the first INVITE on the wire carrying the call's X-VoxBridge-Call-Id; and the pacing of every
RTP stream the server sent: each packet's wire gap minus its RTP-timestamp gap (8 kHz clock),
over consecutive sequence numbers.
"""
import datetime
import json
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agent_turns import percentile, udp_packets  # noqa: E402

RTP_PORTS = range(30000, 31000)


def calls(base, key):
    out, cursor = {}, ""
    for _ in range(100):
        url = f"{base}/v1/calls?direction=outbound&limit=100" + (f"&cursor={cursor}" if cursor else "")
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
        page = json.load(urllib.request.urlopen(req))
        out.update({c["id"]: c for c in page["data"]})
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return out


def when(rfc3339):
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def ms(v):
    return f"{v * 1000:.1f} ms"


def report(base, key, capture, sip_port, singles_file, batch_file):
    stored = calls(base, key)
    invites, streams = {}, {}
    for t, src, dst, payload in udp_packets(capture):
        if src == sip_port and payload.startswith(b"INVITE "):
            m = re.search(rb"X-VoxBridge-Call-Id: *([0-9a-f-]+)", payload)
            if m:
                invites.setdefault(m.group(1).decode(), t)
        # RTP leaves from even ports (RTCP from the odd one above).
        elif src in RTP_PORTS and src % 2 == 0 and len(payload) >= 12 and payload[0] >> 6 == 2:
            seq = int.from_bytes(payload[2:4], "big")
            ts = int.from_bytes(payload[4:8], "big")
            streams.setdefault(src, []).append((t, seq, ts))

    for name, path in (("one at a time", singles_file), ("all at once", batch_file)):
        ids = [line.strip() for line in open(path) if line.strip()]
        states = [stored.get(i, {}) for i in ids]
        done = sum(1 for c in states if c.get("status") == "completed")
        reasons = {}
        for c in states:
            if c.get("status") != "completed":
                reasons[f"{c.get('status')}/{c.get('end_reason')}"] = reasons.get(
                    f"{c.get('status')}/{c.get('end_reason')}", 0) + 1
        print(f"{name}: {len(ids)} calls, {done} completed, not completed {reasons or 0}")
        lags = [invites[i] - when(stored[i]["created_at"]) for i in ids if i in invites and i in stored]
        print(f"  due -> INVITE on the wire: p50 {ms(percentile(lags, 50))}, "
              f"p99 {ms(percentile(lags, 99))}, max {ms(max(lags, default=float('nan')))} "
              f"({len(lags)} calls)")

    errors = []
    for packets in streams.values():
        packets.sort(key=lambda p: p[1])
        for (t1, s1, ts1), (t2, s2, ts2) in zip(packets, packets[1:]):
            if (s2 - s1) % 65536 == 1:
                errors.append(abs((t2 - t1) - ((ts2 - ts1) % 2**32) / 8000))
    print(f"server RTP pacing over {len(streams)} streams, {len(errors)} packet gaps: "
          f"|wire gap - timestamp gap| p50 {ms(percentile(errors, 50))}, "
          f"p99 {ms(percentile(errors, 99))}, max {ms(max(errors, default=float('nan')))}")


def queue(base, key, n):
    from concurrent.futures import ThreadPoolExecutor

    def one(_):
        req = urllib.request.Request(
            f"{base}/v1/calls/outbound", data=b'{"to": "+12025550199"}', method="POST",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        return json.load(urllib.request.urlopen(req))["id"]

    with ThreadPoolExecutor(16) as pool:
        print("\n".join(pool.map(one, range(n))))


def main():
    if sys.argv[1] == "queue":
        queue(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "count":
        stored = calls(sys.argv[2], sys.argv[3])
        print(sum(1 for c in stored.values() if c["status"] in ("completed", "failed")))
    else:
        base, key, capture, sip_port, singles, batch = sys.argv[2:8]
        report(base, key, capture, int(sip_port), singles, batch)


if __name__ == "__main__":
    main()
