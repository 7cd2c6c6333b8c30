"""What observability costs on the hot paths, measured before and after in one run (issue 28).

Starts `agent-payments --http` (live against the standalone twilio-simulator) once per variant
and round, alternating, and drives the same two hot paths through each:

- the status round trip: `tools/call getPaymentStatus` on a legacy session, wrk at 1 and 32
  keep-alive connections (requests/s, p50, p99);
- callbacks/s: signed payment callbacks that each change the session (the card brand Twilio
  reports, alternating), wrk at 16 connections.

Variants: `off` (`AGENT_PAYMENTS_METRICS=off`, no OTLP endpoint: no metrics backend and no
tracer, every metric and span a no-op), `metrics` (the default: Prometheus on the listener),
`traces` (Prometheus, and every span exported over OTLP/HTTP to a receiver in this script that
reads and drops them) and `1-in-10` (the same with the sampler Docs/operations.md recommends for a
busy deployment: `parentbased_traceidratio` at 0.1, a caller's own sampling decision kept). Printed per round and as the median of rounds, with each variant's cost
against `off`.

    .venv/bin/python Benchmarks/observability_ab.py BIN_DIR [--smoke] [--rounds N]

Bounded: every process is stopped, every wait has a deadline. Only for Benchmarks/run.
"""

from __future__ import annotations

import http.server
import os
import secrets
import statistics
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import Endpoint, Simulator, free_port, run_wrk, wait_for, wrk  # noqa: E402

VARIANTS = {"off": {"AGENT_PAYMENTS_METRICS": "off"}, "metrics": {}, "traces": {"OTEL_EXPORTER_OTLP_ENDPOINT": ""},
            "1-in-10": {"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                        "OTEL_TRACES_SAMPLER_ARG": "0.1"}}


class Sink:
    """An OTLP/HTTP endpoint that reads every export and answers 200: what a collector costs the
    server, without a collector's own cost on this machine's two cores."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def wrk_callbacks(url: str, bodies: list[tuple[str, str]], connections: int, seconds: float) -> dict:
    """requests/s, p50 and p99 (ms) of signed form posts, the bodies taken in turn."""
    lua = 'wrk.method = "POST"\n'
    lua += "local bodies = {" + ", ".join(f"{{{body!r}, {signature!r}}}" for body, signature in bodies) + "}\n"
    lua += """
local counter = 0
request = function()
  counter = counter + 1
  local pick = bodies[(counter % #bodies) + 1]
  -- a headers table given here replaces wrk.headers: both are named
  return wrk.format(nil, nil, {["Content-Type"] = "application/x-www-form-urlencoded", ["X-Twilio-Signature"] = pick[2]},
    pick[1])
end
"""
    return run_wrk(lua, url, connections, seconds)


def cpu_seconds(pid: int) -> float:
    """User and system CPU the process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_cpu(pid: int, run) -> dict:
    """A wrk figure with the server's CPU per request in microseconds (`cpu_us`): steadier than the
    rate on two cores that wrk shares, and what an operator pays whatever the load."""
    before = cpu_seconds(pid)
    figure = run()
    figure["cpu_us"] = (cpu_seconds(pid) - before) / max(figure["requests"], 1) * 1e6
    return figure


def measure(bin_dir: Path, simulator: Simulator, extra: dict, seconds: float) -> dict:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "NGROK_", "CALLBACK_", "AGENT_PAYMENTS_", "OTEL_"))}
    info = simulator.info
    env.update({"TWILIO_ACCOUNT_SID": info["accountSid"], "TWILIO_API_KEY": info["apiKey"],
                "TWILIO_API_SECRET": info["apiSecret"], "TWILIO_AUTH_TOKEN": info["authToken"],
                "TWILIO_API_BASE_URL": info["baseURL"], "CALLBACK_BASE_URL": f"http://127.0.0.1:{port}",
                "AGENT_PAYMENTS_LOG_LEVEL": "warning", "AGENT_PAYMENTS_MAX_CONNECTIONS": "2000",
                "AGENT_PAYMENTS_AUDIT": "off",
                "AGENT_PAYMENTS_RATE_TOOL_CALLS": "0", "AGENT_PAYMENTS_RATE_TOOL_CALLS_PER_ADDRESS": "0",
                **extra})
    server = subprocess.Popen([str(bin_dir / "agent-payments"), "--http", f"127.0.0.1:{port}"], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        wait_for(url)
        endpoint = Endpoint(url)
        call_sid = "CA" + secrets.token_hex(16)
        payment = endpoint.call("startPaymentCapture", {"callSid": call_sid})["paymentSid"]
        created = simulator.payments.get(timeout=10)
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "getPaymentStatus", "arguments": {"paymentSid": payment}}}
        figures = {f"status c{n}": with_cpu(server.pid, lambda n=n: wrk(url, body, endpoint.legacy, n, seconds))
                   for n in (1, 32)}
        validator = RequestValidator(info["authToken"])
        bodies = []
        for brand in ("visa", "mastercard"):
            fields = {"AccountSid": info["accountSid"], "CallSid": call_sid, "Sid": payment, "PaymentCardType": brand}
            bodies.append((urllib.parse.urlencode(fields), validator.compute_signature(created["statusCallback"], fields)))
        figures["callbacks c16"] = with_cpu(
            server.pid, lambda: wrk_callbacks(created["statusCallback"], bodies, 16, seconds))
        return figures
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    bin_dir = Path(sys.argv[1])
    smoke = "--smoke" in sys.argv
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else (1 if smoke else 3)
    seconds = 1 if smoke else 5
    simulator = Simulator(bin_dir)
    sink = Sink()
    for extra in VARIANTS.values():
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in extra:
            extra["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.url
    results: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    try:
        print(f"Observability on the hot paths: agent-payments --http live against twilio-simulator, wrk {seconds} s per "
              f"figure, {rounds} round(s), variants alternating")
        print(f"{'round':>5} {'variant':8} | {'status c1 req/s':>15} {'p50 ms':>7} {'cpu us':>6} | "
              f"{'status c32 req/s':>16} {'p99 ms':>7} {'cpu us':>6} | {'callbacks req/s':>15} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'cpu us':>6}")
        for round_ in range(1, rounds + 1):
            for name, extra in VARIANTS.items():
                figures = measure(bin_dir, simulator, extra, seconds)
                results[name].append(figures)
                errors = sum(figure["errors"] for figure in figures.values())
                c1, c32, cb = figures["status c1"], figures["status c32"], figures["callbacks c16"]
                print(f"{round_:>5} {name:8} | {c1['rps']:>15.0f} {c1['p50']:>7.3f} {c1['cpu_us']:>6.1f} | "
                      f"{c32['rps']:>16.0f} {c32['p99']:>7.3f} {c32['cpu_us']:>6.1f} | "
                      f"{cb['rps']:>15.0f} {cb['p50']:>7.3f} {cb['p99']:>7.3f} {cb['cpu_us']:>6.1f}"
                      + (f"  ({errors} errors)" if errors else ""))
        print("medians of rounds, and the cost of each variant against off (a lower rate, more CPU per request):")
        for figure, unit, cost in (("rps", "/s", lambda value, base: 1 - value / base),
                                   ("cpu_us", " us", lambda value, base: value / base - 1)):
            base = {key: statistics.median(r[key][figure] for r in results["off"]) for key in results["off"][0]}
            for name in VARIANTS:
                medians = {key: statistics.median(r[key][figure] for r in results[name]) for key in base}
                costs = ", ".join(f"{key} {medians[key]:.{0 if figure == 'rps' else 1}f}{unit} "
                                  f"({cost(medians[key], base[key]) * 100:+.1f} %)" for key in base)
                print(f"  {name:8} {costs}")
    finally:
        simulator.close()


if __name__ == "__main__":
    main()
