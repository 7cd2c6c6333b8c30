"""Whether webhook endpoints slow a payment: whole simulated payments through agent-payments over
stdio (2025-11-25 handshake, raw JSON-RPC, the tools an agent calls: start, each capture with
long polls while the caller types, complete), timed end to end, with the payment events going to

- no endpoint at all (the baseline),
- a healthy endpoint (answers 204 at once),
- a slow endpoint (answers after 5 s),
- a hung endpoint (takes the request, never answers),
- a dead endpoint (nothing listens: every connection is refused),

with the sessions in memory, and again in PostgreSQL (the transactional outbox) when a database
URL is given. Prints p50 and p95 per payment and the ratio to the baseline; a slow or dead
endpoint must cost a payment nothing.

    .venv/bin/python Benchmarks/webhook_bench.py BIN_DIR [--database-url URL [--only-database]] [--payments N] [--smoke]

Bounded: every process is stopped, every wait has a deadline. Only for Benchmarks/run.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Endpoint:
    """A webhook receiver on loopback answering as `mode` says; counts what it received."""

    def __init__(self, mode: str):
        self.mode = mode
        self.received = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        endpoint = self
        if mode == "dead":
            with socket.socket() as probe:  # a port nothing listens on
                probe.bind(("127.0.0.1", 0))
                self.url = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
            self.httpd = None
            return

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with endpoint.lock:
                    endpoint.received += 1
                if endpoint.mode == "hung":
                    endpoint.stop.wait(60)
                    self.close_connection = True
                    return
                if endpoint.mode == "slow":
                    endpoint.stop.wait(5)
                try:
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.stop.set()
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()


class Server:
    """agent-payments --simulate over stdio, spoken to in raw JSON-RPC."""

    def __init__(self, binary: Path, env: dict):
        # Its log (warnings and worse) is kept, to say why a payment stalled if one does.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([str(binary), "--simulate"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=env)
        self.next_id = 0
        self.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                    "clientInfo": {"name": "webhook-bench", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict):
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"webhook_bench: the server ended during {method}")
            message = json.loads(line)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise SystemExit(f"webhook_bench: {method}: {message['error']}")
                return message["result"]

    def tool(self, name: str, **arguments) -> dict:
        result = self.request("tools/call", {"name": name, "arguments": arguments})
        if result.get("isError"):
            raise SystemExit(f"webhook_bench: {name}: {result['content'][0]['text']}")
        return result["structuredContent"]

    def payment(self, call_sid: str) -> float:
        """One whole payment, as an agent drives it; its duration in ms."""
        started = time.perf_counter()
        status = self.tool("startPaymentCapture", callSid=call_sid, chargeAmount="9.99")
        for _ in range(40):
            if status["nextStep"].get("waitForCaller"):
                status = self.tool("getPaymentStatus", paymentSid=status["paymentSid"], waitSeconds=5, afterVersion=status["version"])
                continue
            name = status["nextStep"].get("tool")
            if name is None or not (name.startswith("capture") or name == "completePaymentCapture"):
                break
            status = self.tool(name, callSid=call_sid, paymentSid=status["paymentSid"])
        took = (time.perf_counter() - started) * 1000
        if status.get("phase") != "completed":
            raise SystemExit(f"webhook_bench: the payment did not complete: {status}\n{self.log_tail()}")
        return took

    def log_tail(self, lines: int = 30) -> str:
        """The server's last log lines that are not the webhook endpoint's own failures, which a
        hung or dead endpoint makes many of."""
        self.log.seek(0)
        kept = [line for line in self.log.read().decode(errors="replace").splitlines() if "webhook" not in line.lower()]
        return "the server's log, last lines other than webhook deliveries':\n" + "\n".join(kept[-lines:])

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.log.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def measure(binary: Path, mode: str | None, database_url: str | None, payments: int) -> tuple[list[float], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_PAYMENTS_", "TWILIO_")) and k != "DATABASE_URL"}
    env["AGENT_PAYMENTS_SIMULATOR_PACING_MS"] = "0"
    env["AGENT_PAYMENTS_LOG_LEVEL"] = "warning"
    endpoint = Endpoint(mode) if mode else None
    if endpoint:
        env["AGENT_PAYMENTS_WEBHOOK_URL"] = endpoint.url
        env["AGENT_PAYMENTS_WEBHOOK_SECRET"] = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    if database_url:
        env["DATABASE_URL"] = database_url
    server = Server(binary, env)
    try:
        server.payment("CA" + secrets.token_hex(16))  # warm-up, not counted
        durations = [server.payment("CA" + secrets.token_hex(16)) for _ in range(payments)]
    finally:
        server.close()
        if endpoint:
            endpoint.close()
    return durations, endpoint.received if endpoint else 0


def main() -> None:
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    binary = Path(args[0]) / "agent-payments"
    smoke = "--smoke" in args
    database_url = args[args.index("--database-url") + 1] if "--database-url" in args else None
    payments = int(args[args.index("--payments") + 1]) if "--payments" in args else (2 if smoke else 20)
    stores = ([] if "--only-database" in args else [("memory", None)]) + ([("PostgreSQL outbox", database_url)] if database_url else [])
    modes = [None, "healthy", "slow", "hung", "dead"]
    print(f"Webhooks and the payment flow: {payments} whole simulated payments per row, agent-payments --simulate over stdio")
    print("| store | endpoint | p50 ms | p95 ms | p50 / no endpoint | requests the endpoint saw |")
    print("|---|---|---|---|---|---|")
    for store, url in stores:
        baseline = None
        for mode in modes:
            durations, received = measure(binary, mode, url, payments)
            p50, p95 = percentile(durations, 0.5), percentile(durations, 0.95)
            if baseline is None:
                baseline = p50
            print(f"| {store} | {mode or 'none'} | {p50:.1f} | {p95:.1f} | {p50 / baseline:.2f} | {received if mode else '-'} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
