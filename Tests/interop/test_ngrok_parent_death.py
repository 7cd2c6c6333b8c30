"""If agent-payments is killed outright (SIGKILL, which no handler sees), the ngrok child it
started must not outlive it. A stand-in `ngrok` on PATH serves the agent's local API and writes
its pid and the names in its environment (only those the agent needs reach it); the server is started in live mode with NGROK_AUTH_TOKEN, killed, and the stand-in
must be gone within 2 s."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import BIN

FAKE_NGROK = r'''#!/usr/bin/env python3
import http.server, json, os, sys
args = sys.argv[1:]
# The agent gets only the environment it needs (NgrokConfiguration.childEnvironment), so the log
# goes beside this script rather than to a path named in a variable of the test's own.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "launch.json"), "w") as log:
    json.dump({"pid": os.getpid(), "environment": sorted(os.environ)}, log)
config = open(args[args.index("--config") + 1]).read()
host, port = [line.split(": ")[1] for line in config.splitlines() if line.startswith("web_addr")][0].split(":")
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"tunnels": [{"public_url": "https://fake-tunnel.ngrok.test"}]}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer((host, int(port)), Handler).serve_forever()
'''


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purpose once it is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        # Gone between the two looks: reading an exiting process's /proc entry can fail with ESRCH.
        return False


def test_the_ngrok_child_dies_with_a_killed_server():
    with tempfile.TemporaryDirectory() as directory:
        fake = Path(directory) / "ngrok"
        fake.write_text(FAKE_NGROK)
        fake.chmod(0o755)
        log = Path(directory) / "launch.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "NGROK_", "CALLBACK_"))}
        env.update({"PATH": f"{directory}:{env.get('PATH', '/usr/bin:/bin')}", "FAKE_NGROK_MARKER": "not for the agent",
                    "NGROK_AUTH_TOKEN": "fake-token", "AGENT_PAYMENTS_LOG_LEVEL": "info",
                    "TWILIO_API_BASE_URL": "http://127.0.0.1:9"})  # never called: no tool runs
        errlog = tempfile.TemporaryFile("w+b")
        server = subprocess.Popen([str(BIN / "agent-payments"), "AC" + "0" * 32, "SK" + "0" * 32, "not-a-real-secret"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog, env=env)
        try:
            deadline = time.monotonic() + 20
            while not log.exists() or b"payment system ready" not in (errlog.seek(0) or errlog.read()):
                assert server.poll() is None, (errlog.seek(0), errlog.read().decode())
                assert time.monotonic() < deadline, "the server never reported its tunnel"
                time.sleep(0.05)
            launch = json.loads(log.read_text())
            pid = launch["pid"]
            assert alive(pid)
            assert "NGROK_AUTHTOKEN" in launch["environment"] and "FAKE_NGROK_MARKER" not in launch["environment"], launch
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=10)
            gone_by = time.monotonic() + 2
            while alive(pid) and time.monotonic() < gone_by:
                time.sleep(0.05)
            assert not alive(pid), "the ngrok stand-in outlived the killed server"
        finally:
            if server.poll() is None:
                server.kill()
            errlog.close()
