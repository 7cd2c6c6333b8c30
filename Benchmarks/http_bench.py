"""MCP over Streamable HTTP, agent-payments against the official Python SDK's server in one run.

For each server: `ping` (legacy session) and `tools/call getPaymentStatus` (legacy session, and
2026-07-28 stateless) over keep-alive connections at concurrency 1 and 32, driven by wrk:
requests/s, p50 and p99. Then agent-payments' notification latency: a signed status callback
posted to the session's callback URL, to the `notifications/resources/updated` event on a
2026-07-28 listen stream (p50, p99). agent-payments runs in live mode against the standalone
twilio-simulator (so the benchmark can sign callbacks with its Auth Token); the peer is
Benchmarks/peers/python_peer.py served with `run(transport="streamable-http")`. Beside them, two
floors at one connection: `GET /healthz` on the same listener, and the HTTP stack alone
(Benchmarks/HTTPFloor) answering the same requests with fixed bodies of the answers' sizes.

    .venv/bin/python Benchmarks/http_bench.py BIN_DIR [--smoke]

Bounded: every process is stopped, every wait has a deadline. Only for Benchmarks/run.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import httpx2
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[1]
MODERN_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
               "io.modelcontextprotocol/clientInfo": {"name": "http-bench", "version": "1"}}
WRK = "/usr/bin/wrk"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            parts = urllib.parse.urlsplit(url)
            with socket.create_connection((parts.hostname, parts.port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"http_bench: nothing listens at {url} after {seconds} s")


def sse_messages(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def answer(response) -> dict:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return sse_messages(response.text)[-1]
    return response.json()


class Endpoint:
    """One MCP endpoint: a legacy session, and the bodies and headers the load uses."""

    def __init__(self, url: str):
        self.url = url
        self.client = httpx2.Client(timeout=10)
        reply = self.client.post(url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "http-bench", "version": "1"}}},
            headers={"Accept": "application/json, text/event-stream"})
        reply.raise_for_status()
        self.session = reply.headers["mcp-session-id"]
        self.legacy = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                       "Mcp-Session-Id": self.session, "MCP-Protocol-Version": "2025-11-25"}
        self.client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=self.legacy)

    def call(self, tool: str, arguments: dict) -> dict:
        reply = self.client.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                                 "params": {"name": tool, "arguments": arguments}}, headers=self.legacy)
        message = answer(reply)
        result = message["result"]
        return result.get("structuredContent") or json.loads(result["content"][0]["text"])

    @staticmethod
    def modern_headers(method: str, name: str | None = None) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                   "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
        if name:
            headers["Mcp-Name"] = name
        return headers


def wrk(url: str, body: dict, headers: dict, connections: int, seconds: float) -> dict:
    """requests/s, p50 and p99 (ms) from wrk over keep-alive connections. Every request carries
    its own JSON-RPC id (a legacy session refuses an id already in progress)."""
    text = json.dumps({**body, "id": "ID"})
    before, after = text.split('"ID"')
    lua = "wrk.method = \"POST\"\n" + "".join(
        f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n" for name, value in headers.items())
    lua += f"local before = {json.dumps(before)}\nlocal after = {json.dumps(after)}\n"
    lua += """
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, before .. '"' .. tostring(tid) .. "-" .. counter .. '"' .. after)
end
"""
    return run_wrk(lua, url, connections, seconds, threads=1 if connections == 1 else 2)


def run_wrk(lua: str, url: str, connections: int, seconds: float, threads: int = 2) -> dict:
    """Runs wrk with `lua` (which sets up the requests; the summary is added here): requests/s,
    p50 and p99 (ms), errors (non-2xx/3xx, connect, read, write, timeouts) and requests."""
    lua += """
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %f %f %f\\n", summary.requests, summary.errors.status + summary.errors.connect +
    summary.errors.read + summary.errors.write + summary.errors.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        out = subprocess.run([WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", script.name, url],
                             capture_output=True, text=True, timeout=seconds + 30)
    finally:
        os.unlink(script.name)
    match = re.search(r"RESULT (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)", out.stdout)
    if not match:
        raise SystemExit(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    requests, errors, duration_us, p50, p99, _ = match.groups()
    return {"rps": int(requests) / (int(duration_us) / 1e6), "p50": float(p50) / 1000, "p99": float(p99) / 1000,
            "errors": int(errors), "requests": int(requests)}


def cases_of(endpoint: Endpoint, payment: str, modern_ok: bool) -> dict:
    """The MCP requests measured, by label: (JSON-RPC body, HTTP headers)."""
    status = {"paymentSid": payment}
    cases = {
        "ping (legacy)": ({"jsonrpc": "2.0", "id": 7, "method": "ping"}, endpoint.legacy),
        "getPaymentStatus (legacy)": ({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                       "params": {"name": "getPaymentStatus", "arguments": status}}, endpoint.legacy),
    }
    if modern_ok:
        cases["getPaymentStatus (2026-07-28)"] = (
            {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
             "params": {"name": "getPaymentStatus", "arguments": status, "_meta": MODERN_META}},
            Endpoint.modern_headers("tools/call", "getPaymentStatus"))
    return cases


def load(endpoint: Endpoint, payment: str, seconds: float, modern_ok: bool) -> dict:
    figures = {}
    for label, (body, headers) in cases_of(endpoint, payment, modern_ok).items():
        for connections in (1, 32):
            figures[(label, connections)] = wrk(endpoint.url, body, headers, connections, seconds)
    return figures


def modern_works(url: str) -> bool:
    body = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": MODERN_META}}
    try:
        reply = httpx2.post(url, json=body, headers=Endpoint.modern_headers("server/discover"), timeout=10)
        return reply.status_code == 200 and "result" in answer(reply)
    except Exception:
        return False


class Simulator:
    def __init__(self, bin_dir: Path):
        self.proc = subprocess.Popen([str(bin_dir / "twilio-simulator"), "--pacing-ms", "0", "--report-payments"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.info = json.loads(self.proc.stdout.readline())
        self.payments: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            if event.get("event") == "payment-created":
                self.payments.put(event)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def notification_latency(url: str, callback_url: str, payment: dict, auth_token: str, samples: int) -> list[float]:
    """Seconds from posting a signed callback (a new masked card prefix each time) to the
    resource-updated event on an open listen stream."""
    uri = f"payment://{payment['callSid']}/{payment['paymentSid']}/status"
    body = {"jsonrpc": "2.0", "id": "listen", "method": "subscriptions/listen",
            "params": {"notifications": {"resourceSubscriptions": [uri]}, "_meta": MODERN_META}}
    events: queue.Queue = queue.Queue()
    opened = threading.Event()
    stop = threading.Event()

    def reader():
        with httpx2.Client(timeout=httpx2.Timeout(10, read=60)) as client:
            with client.stream("POST", url, json=body, headers=Endpoint.modern_headers("subscriptions/listen")) as response:
                for line in response.iter_lines():
                    if stop.is_set():
                        return
                    if line.startswith("data: "):
                        message = json.loads(line[6:])
                        if message.get("method") == "notifications/subscriptions/acknowledged":
                            opened.set()
                        elif message.get("method") == "notifications/resources/updated":
                            events.put(time.perf_counter())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    if not opened.wait(10):
        raise SystemExit("http_bench: the listen stream was not acknowledged")
    validator = RequestValidator(auth_token)
    latencies = []
    with httpx2.Client(timeout=10) as client:
        for index in range(samples):
            # A change the session takes whatever it is capturing: the card brand Twilio reports.
            fields = {"AccountSid": payment.get("accountSid", ""), "CallSid": payment["callSid"], "Sid": payment["paymentSid"],
                      "PaymentCardType": "visa" if index % 2 == 0 else "mastercard"}
            fields = {key: value for key, value in fields.items() if value}
            encoded = urllib.parse.urlencode(fields)
            signature = validator.compute_signature(callback_url, fields)
            while not events.empty():
                events.get_nowait()
            sent = time.perf_counter()
            reply = client.post(callback_url, content=encoded, headers={
                "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
            if reply.status_code >= 300:
                raise SystemExit(f"http_bench: the callback was refused: {reply.status_code}")
            try:
                arrived = events.get(timeout=5)
            except queue.Empty:
                raise SystemExit("http_bench: no resource-updated event within 5 s of a callback")
            latencies.append(arrived - sent)
    stop.set()
    return latencies


def stack_floor(bin_dir: Path, cases: dict, seconds: float) -> dict | None:
    """GET /healthz and each MCP case's request POSTed to HTTPFloor, at one connection; None when
    the harness is not built (the product's own build, without the Benchmarks package)."""
    binary = bin_dir / "HTTPFloor"
    if not binary.exists():
        print(f"HTTP stack alone: not measured ({binary} is not built)")
        return None
    floor = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
    try:
        ready: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: ready.put(floor.stdout.readline()), daemon=True).start()
        try:
            line = ready.get(timeout=30)
        except queue.Empty:
            raise SystemExit(f"HTTPFloor did not start: no port printed within 30 s ({binary}; Benchmarks/run builds it)")
        if not line.startswith("PORT "):
            raise SystemExit(f"HTTPFloor did not start: it printed {line!r} ({binary}; Benchmarks/run builds it)")
        base = f"http://127.0.0.1:{int(line.split()[1])}"
        figures = {"GET /healthz": run_wrk('wrk.method = "GET"\n', f"{base}/healthz", 1, seconds, threads=1)}
        for label, (body, headers) in cases.items():
            answer_kind = "ping" if label.startswith("ping") else "status"
            figures[f"POST sized as {label}"] = wrk(f"{base}/floor/{answer_kind}", body, headers, 1, seconds)
        return figures
    finally:
        floor.stdin.close()
        try:
            floor.wait(timeout=15)
        except subprocess.TimeoutExpired:
            floor.kill()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    bin_dir = Path(sys.argv[1])
    smoke = "--smoke" in sys.argv
    seconds = 1 if smoke else 5
    samples = 20 if smoke else 500
    processes: list[subprocess.Popen] = []
    simulator = Simulator(bin_dir)
    try:
        # agent-payments, live against the stand-in, MCP and callbacks on one port.
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "NGROK_", "CALLBACK_", "AGENT_PAYMENTS_"))}
        env.update({"TWILIO_ACCOUNT_SID": simulator.info["accountSid"], "TWILIO_API_KEY": simulator.info["apiKey"],
                    "TWILIO_API_SECRET": simulator.info["apiSecret"], "TWILIO_AUTH_TOKEN": simulator.info["authToken"],
                    "TWILIO_API_BASE_URL": simulator.info["baseURL"], "CALLBACK_BASE_URL": f"http://127.0.0.1:{port}",
                    "AGENT_PAYMENTS_LOG_LEVEL": "warning", "AGENT_PAYMENTS_MAX_CONNECTIONS": "2000",
                    # The loop is the benchmark, not a runaway client: no tool-call rate limit.
                    "AGENT_PAYMENTS_RATE_TOOL_CALLS": "0", "AGENT_PAYMENTS_RATE_TOOL_CALLS_PER_ADDRESS": "0"})
        ours = subprocess.Popen([str(bin_dir / "agent-payments"), "--http", f"127.0.0.1:{port}"], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(ours)
        our_url = f"http://127.0.0.1:{port}/mcp"
        wait_for(our_url)

        peer_port = free_port()
        peer_code = (f"import runpy, sys; sys.argv = ['peer']; peer = runpy.run_path({str(ROOT / 'Benchmarks/peers/python_peer.py')!r}); "
                     f"peer['server'].run(transport='streamable-http', host='127.0.0.1', port={peer_port})")
        peer = subprocess.Popen([sys.executable, "-c", peer_code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        processes.append(peer)
        peer_url = f"http://127.0.0.1:{peer_port}/mcp"
        wait_for(peer_url)

        call_sid = "CA" + secrets.token_hex(16)
        our_endpoint = Endpoint(our_url)
        our_payment = our_endpoint.call("startPaymentCapture", {"callSid": call_sid})["paymentSid"]
        created = simulator.payments.get(timeout=10)
        peer_endpoint = Endpoint(peer_url)
        peer_payment = peer_endpoint.call("startPaymentCapture", {"callSid": call_sid})["paymentSid"]

        our_modern, peer_modern = modern_works(our_url), modern_works(peer_url)
        ours_figures = load(our_endpoint, our_payment, seconds, our_modern)
        peer_figures = load(peer_endpoint, peer_payment, seconds, peer_modern)

        print(f"MCP over Streamable HTTP: wrk, keep-alive connections, {seconds} s per figure "
              f"(agent-payments --http, live against twilio-simulator; peer: python_peer.py on mcp's streamable-http server)")
        print(f"{'request':32} {'conn':>4} | {'ours req/s':>11} {'p50 ms':>8} {'p99 ms':>8} | {'peer req/s':>10} {'p50 ms':>8} {'p99 ms':>8} | {'ratio':>6}")
        for (label, connections), figure in ours_figures.items():
            other = peer_figures.get((label, connections))
            ratio = f"{figure['rps'] / other['rps']:.1f}x" if other and other["rps"] > 0 else "n/a"
            peer_text = (f"{other['rps']:>10.0f} {other['p50']:>8.2f} {other['p99']:>8.2f}" if other
                         else f"{'n/a (no 2026-07-28)':>28}")
            notes = [f"{figure['errors']} errors (ours)"] if figure["errors"] else []
            if other and other["errors"]:
                notes.append(f"{other['errors']} errors (peer)")
            print(f"{label:32} {connections:>4} | {figure['rps']:>11.0f} {figure['p50']:>8.3f} {figure['p99']:>8.3f} | {peer_text} | {ratio:>6}"
                  + (f"  ({', '.join(notes)})" if notes else ""))

        # The floor: a trivial route on the same listener (issue 30, item 5: MCP at one connection
        # within 1.5x of it).
        floor = {connections: run_wrk('wrk.method = "GET"\n', f"http://127.0.0.1:{port}/healthz", connections, seconds,
                                      threads=1 if connections == 1 else 2) for connections in (1, 32)}
        for connections, figure in floor.items():
            print(f"{'GET /healthz (the floor)':32} {connections:>4} | {figure['rps']:>11.0f} {figure['p50']:>8.3f} {figure['p99']:>8.3f} |")
        for (label, connections), figure in ours_figures.items():
            if connections == 1 and label.startswith("getPaymentStatus") and figure["rps"] > 0:
                print(f"{label} at one connection: the floor's rate is {floor[1]['rps'] / figure['rps']:.2f}x its rate (target <= 1.5x)")

        # The HTTP stack's own floor for these requests: HTTPFloor serves the same listener (guarded
        # HTTP/1, NIO as the executor, the same router context) with routes that only collect the
        # body and answer a fixed body of the MCP answer's size. What ours spends above it is the
        # server's own work: JSON-RPC, the session, the engine, the tool, the answer's JSON.
        stack = stack_floor(bin_dir, cases_of(our_endpoint, our_payment, our_modern), seconds)
        if stack:
            print("HTTP stack alone (Benchmarks/HTTPFloor: the same listener; each POST collects the same request's body "
                  "and answers a fixed body of its MCP answer's size), one connection:")
            get = stack["GET /healthz"]
            for label, figure in stack.items():
                versus = "" if label == "GET /healthz" else f"  GET's rate is {get['rps'] / figure['rps']:.2f}x this"
                print(f"  {label:46} {figure['rps']:>9.0f} req/s, p50 {figure['p50']:.3f} ms{versus}")
            for (label, connections), figure in ours_figures.items():
                floor_post = stack.get(f"POST sized as {label}")
                if connections == 1 and floor_post and figure["rps"] > 0:
                    print(f"{label} at one connection: the stack's POST floor's rate is "
                          f"{floor_post['rps'] / figure['rps']:.2f}x its rate (its GET floor's {get['rps'] / figure['rps']:.2f}x)")

        latencies = notification_latency(our_url, created["statusCallback"], {**created, "accountSid": simulator.info["accountSid"]},
                                         simulator.info["authToken"], samples)
        print(f"listen-stream notification latency, signed callback posted -> notifications/resources/updated event "
              f"({len(latencies)} samples): p50 {percentile(latencies, 0.5) * 1000:.3f} ms, p99 {percentile(latencies, 0.99) * 1000:.3f} ms, "
              f"max {max(latencies) * 1000:.3f} ms")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        simulator.close()


if __name__ == "__main__":
    main()
