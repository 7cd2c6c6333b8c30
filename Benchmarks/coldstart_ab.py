#!/usr/bin/env python3
"""Cold start of two agent-payments binaries, measured alternately in one run: spawn →
`initialize` result over stdio (`--simulate`), the way an MCP client starts the server.

    Benchmarks/coldstart_ab.py OLD_BINARY NEW_BINARY [--runs 30] [--rounds 3]

Each round spawns each binary `runs` times, alternating, after one warm-up spawn each (the
page cache), and prints median, p90 and minimum in milliseconds per binary and round. Only
loopback-free pipes are used; every child is ended by closing its standard input."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time

INITIALIZE = json.dumps({
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "coldstart", "version": "1"}},
}).encode() + b"\n"


def once(binary: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_PAYMENTS_", "TWILIO_", "CALLBACK_"))}
    env.update({"AGENT_PAYMENTS_LOG_LEVEL": "error", "AGENT_PAYMENTS_AUDIT": "off"})
    start = time.perf_counter()
    child = subprocess.Popen([binary, "--simulate"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=env)
    child.stdin.write(INITIALIZE)
    child.stdin.flush()
    line = child.stdout.readline()
    took = (time.perf_counter() - start) * 1000
    assert b'"result"' in line, line[:300]
    child.stdin.close()
    child.wait(timeout=10)
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binaries = {"old": args.old, "new": args.new}
    for binary in binaries.values():
        once(binary)
    print(f"{'round':>5} {'binary':>6} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}")
    for round_ in range(1, args.rounds + 1):
        samples: dict[str, list[float]] = {name: [] for name in binaries}
        for _ in range(args.runs):
            for name, binary in binaries.items():
                samples[name].append(once(binary))
        for name, values in samples.items():
            values.sort()
            p90 = values[int(len(values) * 0.9) - 1]
            print(f"{round_:>5} {name:>6} {statistics.median(values):>10.2f} {p90:>8.2f} {values[0]:>8.2f}")


if __name__ == "__main__":
    main()
