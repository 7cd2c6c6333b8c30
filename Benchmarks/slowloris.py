"""A slow-client attack on the callback port, measured (issue: the public callback URL survives
slow and idle connections). Runs agent-payments in live mode against the standalone
twilio-simulator on loopback, opens many half-open connections (the first header lines of a
POST, then nothing) and times, during and after the attack, a GET /healthz and a genuine
callback signed with the Auth Token.

Usage: python slowloris.py BIN_DIR [--smoke]
Scenario A: the machine's limits (the server raises its soft open-file limit to the hard one),
5,000 half-open connections. Scenario B: the server held to 1,024 open files (prlimit),
1,100 half-open connections. Only loopback is touched; every loop is bounded."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from twilio.request_validator import RequestValidator

BIN = sys.argv[1]
SMOKE = "--smoke" in sys.argv
HEAD_TIMEOUT_MS = 1000 if SMOKE else 5000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fail(message: str):
    print(f"slowloris: {message}", file=sys.stderr)
    sys.exit(1)


class Rig:
    """twilio-simulator + agent-payments (live) with one payment session started."""

    def __init__(self, file_limit: int | None):
        self.sim = subprocess.Popen([f"{BIN}/twilio-simulator", "--pacing-ms", "0", "--report-payments"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.info = json.loads(self.sim.stdout.readline())
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "NGROK_", "CALLBACK_"))}
        env.update({"TWILIO_ACCOUNT_SID": self.info["accountSid"], "TWILIO_API_KEY": self.info["apiKey"],
                    "TWILIO_API_SECRET": self.info["apiSecret"], "TWILIO_AUTH_TOKEN": self.info["authToken"],
                    "TWILIO_API_BASE_URL": self.info["baseURL"], "CALLBACK_PORT": str(self.port),
                    "CALLBACK_BASE_URL": f"http://127.0.0.1:{self.port}", "AGENT_PAYMENTS_LOG_LEVEL": "info",
                    "AGENT_PAYMENTS_HEAD_TIMEOUT_MS": str(HEAD_TIMEOUT_MS)})
        command = [f"{BIN}/agent-payments"]
        if file_limit:
            command = ["prlimit", f"--nofile={file_limit}:{file_limit}", *command]
        self.errlog = tempfile.TemporaryFile("w+")
        self.server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errlog, env=env, text=True)
        self.request(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "attack", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        call_sid = "CA" + os.urandom(16).hex()
        reply = self.request(2, "tools/call", {"name": "startPaymentCapture", "arguments": {"callSid": call_sid}})
        if reply.get("result", {}).get("isError"):
            fail(f"could not start a payment session: {reply}")
        created = json.loads(self.sim.stdout.readline())
        self.url, self.sid, self.call_sid = created["statusCallback"], created["paymentSid"], call_sid
        self.validator = RequestValidator(self.info["authToken"])
        self.sequence = 0

    def send(self, message: dict):
        self.server.stdin.write(json.dumps(message) + "\n")
        self.server.stdin.flush()

    def request(self, id: int, method: str, params: dict) -> dict:
        self.send({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        while True:
            line = self.server.stdout.readline()
            if not line:
                fail("agent-payments closed its output")
            message = json.loads(line)
            if message.get("id") == id:
                return message

    def healthz(self, timeout: float) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=timeout) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def callback(self, timeout: float) -> bool:
        self.sequence += 1
        fields = {"Sid": self.sid, "CallSid": self.call_sid, "AccountSid": self.info["accountSid"], "PaymentCardType": f"visa{self.sequence}"}
        request = urllib.request.Request(self.url, data=urllib.parse.urlencode(fields).encode(), headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": self.validator.compute_signature(self.url, fields)})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status == 204
        except (OSError, urllib.error.URLError):
            return False

    def alive(self) -> bool:
        return self.server.poll() is None

    def log(self) -> str:
        self.errlog.seek(0)
        return self.errlog.read()

    def close(self):
        self.server.stdin.close()
        self.server.wait(timeout=10)
        self.sim.stdin.close()
        self.sim.wait(timeout=10)


def half_open(port: int, count: int) -> list[socket.socket]:
    """`count` connections, each with the first lines of a POST head and then nothing."""
    import selectors
    attackers, pending = [], selectors.DefaultSelector()
    for _ in range(count):
        attacker = socket.socket()
        attacker.setblocking(False)
        attacker.connect_ex(("127.0.0.1", port))
        pending.register(attacker, selectors.EVENT_WRITE)
        attackers.append(attacker)
    waiting = count
    deadline = time.monotonic() + 30
    while waiting and time.monotonic() < deadline:
        for key, _ in pending.select(timeout=1):
            pending.unregister(key.fileobj)
            waiting -= 1
            try:
                key.fileobj.send(b"POST /twilio/payment-callbacks/x HTTP/1.1\r\nHost: victim\r\nContent-")
            except OSError:
                pass
    return attackers


def attacker_states(attackers) -> tuple[int, int, int]:
    """(closed by the server, refused with 503, still open)."""
    closed = refused = still = 0
    for attacker in attackers:
        try:
            data = attacker.recv(64, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            if data == b"":
                closed += 1
            elif data.startswith(b"HTTP/1.1 503"):
                refused += 1
            else:
                still += 1
        except BlockingIOError:
            still += 1
        except OSError:
            closed += 1
    return closed, refused, still


def timed(probe) -> float | None:
    """Milliseconds `probe` took, or None if it did not succeed within 1 s."""
    started = time.monotonic()
    return round((time.monotonic() - started) * 1000, 2) if probe(1.0) else None


def scenario_a():
    count = 300 if SMOKE else 5000
    rig = Rig(file_limit=None)
    try:
        start = time.monotonic()
        attackers = half_open(rig.port, count)
        opened = time.monotonic() - start
        health, callback = timed(rig.healthz), timed(rig.callback)
        still_open = attacker_states(attackers)[2]
        figures = {"attackers still held open while measuring": still_open,"half-open connections": count, "opened in (s)": round(opened, 2),
                   "GET /healthz during the attack (ms)": health, "signed callback during the attack (ms)": callback,
                   "server alive": rig.alive()}
        for attacker in attackers:
            attacker.close()
        return figures
    finally:
        rig.close()


def scenario_b():
    count = 300 if SMOKE else 1100
    limit = 256 if SMOKE else 1024
    rig = Rig(file_limit=limit)
    try:
        start = time.monotonic()
        attackers = half_open(rig.port, count)
        recovered = cleared = None
        deadline = start + HEAD_TIMEOUT_MS / 1000 + 10
        while time.monotonic() < deadline and (recovered is None or cleared is None):
            if cleared is None and attacker_states(attackers)[2] == 0:
                cleared = time.monotonic() - start
            if recovered is None and rig.healthz(0.5) and rig.callback(0.5):
                recovered = time.monotonic() - start
            time.sleep(0.05)
        closed, refused, still = attacker_states(attackers)
        log = rig.log()
        target = HEAD_TIMEOUT_MS / 1000 + 2
        figures = {"open-file limit": limit, "half-open connections": count,
                   "every attacker closed or refused after (s)": None if cleared is None else round(cleared, 2),
                   "healthz and signed callback succeed again after (s)": None if recovered is None else round(recovered, 2),
                   "target (s)": target,
                   "attackers: closed / refused with 503 / still open": f"{closed} / {refused} / {still}",
                   "within the target": (cleared or 1e9) <= target and (recovered or 1e9) <= target,
                   "server alive": rig.alive(), "pressure logged at warning": "listener under pressure" in log}
        for attacker in attackers:
            attacker.close()
        return figures
    finally:
        rig.close()


def main():
    results = [("A: machine limits (soft raised to hard)", scenario_a()), ("B: prlimit --nofile", scenario_b())]
    print(f"Slow-client attack on the callback port (head timeout {HEAD_TIMEOUT_MS} ms{', smoke' if SMOKE else ''})")
    print("| scenario | measure | figure |")
    print("|---|---|---|")
    missing = []
    for name, figures in results:
        for measure, value in figures.items():
            print(f"| {name} | {measure} | {value} |")
            if value is None or value is False:
                missing.append(f"{name}: {measure}")
    if missing:
        fail("not achieved: " + "; ".join(missing))


main()
