#!/usr/bin/env python3
"""Barge-in latency on the wire, from a loopback capture of benches/barge_in.sh.

Per call (the server's RTP port, from the SDP of its 200 OK): the caller's speech onset is
the first caller PCMU packet with speech; the greeting's last packet is the last agent
packet with speech before a gap of at least 0.6 s (the agent stays quiet while it hears the
caller out). Latency = that packet's time + 20 ms (its audio) - the onset. Speech thresholds
as in agent_turns.py.

usage: barge_in.py CAPTURE.pcap SIP_PORT
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agent_turns import (AGENT_SPEECH_RMS, CALLER_SPEECH_RMS, pcmu, percentile, rms,  # noqa: E402
                         udp_packets)

QUIET_S = 0.6


def main():
    capture, sip_port = sys.argv[1], int(sys.argv[2])
    answered, agent, caller = set(), {}, {}
    for t, src, dst, payload in udp_packets(capture):
        if src == sip_port and payload.startswith(b"SIP/2.0 200") and b"INVITE" in payload:
            m = re.search(rb"m=audio (\d+) ", payload)
            if m:
                answered.add(int(m.group(1)))
            continue
        audio = pcmu(payload)
        if audio is None:
            continue
        if src in answered and rms(audio) > AGENT_SPEECH_RMS:
            agent.setdefault(src, []).append(t)
        elif dst in answered and rms(audio) > CALLER_SPEECH_RMS:
            caller.setdefault(dst, []).append(t)

    latencies, missed = [], 0
    for port in answered:
        said, spoken = caller.get(port, []), agent.get(port, [])
        if not said or not spoken:
            missed += 1
            continue
        onset = said[0]
        talking = [t for t in spoken if t >= onset - 0.02]
        last = next((a for a, b in zip(talking, talking[1:] + [float("inf")]) if b - a >= QUIET_S),
                    None)
        if last is None or last < onset:
            missed += 1  # the caller spoke after the greeting had ended
            continue
        latencies.append(last + 0.02 - onset)

    ms = lambda v: f"{v * 1000:.0f} ms"
    print(f"calls {len(answered)}; barge-ins measured {len(latencies)}; not measurable {missed}")
    print(f"caller speech onset -> last agent speech packet: p50 {ms(percentile(latencies, 50))}, "
          f"p95 {ms(percentile(latencies, 95))}, max {ms(max(latencies, default=float('nan')))}")
    print("all (ms): " + " ".join(f"{v * 1000:.0f}" for v in sorted(latencies)))


if __name__ == "__main__":
    main()
