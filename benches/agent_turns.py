#!/usr/bin/env python3
"""Agent timings measured on the wire, from a loopback capture of scripted calls
(benches/agent_calls.sh). Standard library only.

For each call (the server's RTP port, learnt from the SDP of its 200 OK):
- first audio: the 200 OK leaving the server -> the first server RTP packet with speech;
- turns: the last caller RTP packet with speech in an answer -> the first server RTP packet
  with speech after it (the agent's next prompt).

Speech is a 20 ms PCMU packet whose RMS is above a threshold: the agent's comfort noise sits
near RMS 12 and espeak-ng's quietest onsets (a "th") near 70, so 40 for the agent; the
caller's recorded answers have room noise, so 300 for them (their speech is far louder).

usage: agent_turns.py CAPTURE.pcap SIP_PORT
"""
import math
import re
import struct
import sys

AGENT_SPEECH_RMS = 40
CALLER_SPEECH_RMS = 300
# A gap this long in the caller's speech ends an answer.
ANSWER_GAP_S = 0.5


def ulaw(byte):
    byte = ~byte & 0xFF
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 7, byte & 0x0F
    sample = ((mantissa << 3) + 0x84) << exponent
    sample -= 0x84
    return -sample if sign else sample


ULAW = [ulaw(b) for b in range(256)]


def rms(payload):
    if not payload:
        return 0.0
    return math.sqrt(sum(ULAW[b] ** 2 for b in payload) / len(payload))


def udp_packets(path):
    """(time, src port, dst port, payload) for each IPv4 UDP packet of an Ethernet pcap."""
    data = open(path, "rb").read()
    if data[:4] != b"\xd4\xc3\xb2\xa1" or struct.unpack("<I", data[20:24])[0] != 1:
        sys.exit("expected a little-endian Ethernet pcap (dumpcap -P on lo)")
    at = 24
    while at + 16 <= len(data):
        sec, usec, length, _ = struct.unpack("<IIII", data[at:at + 16])
        frame = data[at + 16:at + 16 + length]
        at += 16 + length
        ip = frame[14:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 0x0F) * 4:]
        src, dst = struct.unpack(">HH", udp[:4])
        yield sec + usec / 1e6, src, dst, udp[8:]


def pcmu(payload):
    """The audio of a PCMU RTP packet, else None."""
    if len(payload) < 12 or payload[0] >> 6 != 2 or payload[1] & 0x7F != 0:
        return None
    return payload[12 + (payload[0] & 0x0F) * 4:]


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    capture, sip_port = sys.argv[1], int(sys.argv[2])
    answered = {}  # server RTP port -> time of the 200 OK
    agent = {}  # server RTP port -> [(time, speech?)]
    caller = {}  # server RTP port -> [(time, speech?)]
    for t, src, dst, payload in udp_packets(capture):
        if src == sip_port and payload.startswith(b"SIP/2.0 200") and b"INVITE" in payload:
            m = re.search(rb"m=audio (\d+) ", payload)
            if m:
                answered.setdefault(int(m.group(1)), t)
            continue
        audio = pcmu(payload)
        if audio is None:
            continue
        if src in answered:
            agent.setdefault(src, []).append((t, rms(audio) > AGENT_SPEECH_RMS))
        elif dst in answered:
            caller.setdefault(dst, []).append((t, rms(audio) > CALLER_SPEECH_RMS))

    first_audio, turns = [], []
    for port, ok_at in answered.items():
        spoken = [t for t, speech in agent.get(port, []) if speech]
        if spoken:
            first_audio.append(spoken[0] - ok_at)
        # Ends of the caller's answers: a speech packet followed by a gap.
        said = [t for t, speech in caller.get(port, []) if speech]
        ends = [a for a, b in zip(said, said[1:] + [math.inf]) if b - a > ANSWER_GAP_S]
        for end in ends:
            after = next((t for t in spoken if t > end), None)
            if after is not None:
                turns.append(after - end)

    ms = lambda v: f"{v * 1000:.0f} ms"
    print(f"calls answered {len(answered)}; with agent audio {len(first_audio)}")
    print(f"first agent audio after the 200 OK: p50 {ms(percentile(first_audio, 50))}, "
          f"p99 {ms(percentile(first_audio, 99))}, max {ms(max(first_audio, default=math.nan))}")
    print(f"turns {len(turns)}: end of caller speech -> first RTP of the next prompt: "
          f"p50 {ms(percentile(turns, 50))}, p99 {ms(percentile(turns, 99))}, "
          f"max {ms(max(turns, default=math.nan))}")


if __name__ == "__main__":
    main()
