"""Payment events pushed to the voice app (issue 26): the real agent-payments binary in
--simulate mode, driven through a whole payment by the official MCP SDK, posts every event to a
real HTTP receiver on loopback. Each event is verified with `standardwebhooks` (an independent
implementation of the signature scheme) and against Docs/payment-events.schema.json."""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
import threading
import time
import urllib.error
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest
from jsonschema import Draft202012Validator
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conftest import BIN
from test_agent_payments_e2e import call, new_call, run_payment

pytestmark = pytest.mark.anyio

SERVER = BIN / "agent-payments"
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "Docs" / "payment-events.schema.json").read_text())
CARD = "4111111111111111"


class Receiver:
    """A webhook endpoint on loopback: records every request; `script(n)` answers the n-th."""

    def __init__(self, script=lambda n: 204):
        self.requests: list[tuple[dict, bytes, int]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    status = script(len(receiver.requests))
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def delivered(self) -> list[tuple[dict, bytes]]:
        with self.lock:
            return [(headers, body) for headers, body, status in self.requests if 200 <= status < 300]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def receiving(script=lambda n: 204):
    receiver = Receiver(script)
    try:
        yield receiver
    finally:
        receiver.close()


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@asynccontextmanager
async def server(env_extra: dict, scripts: dict | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_PAYMENTS_")}
    env.update({"AGENT_PAYMENTS_SIMULATOR_PACING_MS": "0", **env_extra})
    script_file = None
    if scripts:
        script_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(scripts, script_file)
        script_file.close()
        env["AGENT_PAYMENTS_SIMULATOR_SCRIPT"] = script_file.name
    errlog = tempfile.TemporaryFile("w+")
    client = Client(stdio_client(StdioServerParameters(command=str(SERVER), args=["--simulate"], env=env), errlog=errlog), mode="2026-07-28")
    try:
        async with client:
            yield client, errlog
    finally:
        errlog.seek(0)
        log = errlog.read()
        errlog.close()
        if script_file:
            os.unlink(script_file.name)
        for secret in [v for k, v in env_extra.items() if "SECRET" in k]:
            assert secret not in log and secret.removeprefix("whsec_") not in log, "a webhook secret reached the log"


async def eventually(predicate, what: str, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await anyio.sleep(0.05)


def verified(secret: str, headers: dict, body: bytes) -> dict:
    """The event, after `standardwebhooks` verified its signature; and tampering fails it."""
    webhook = Webhook(secret)
    event = webhook.verify(body, headers)
    for tampered in ({**headers, "webhook-id": headers["webhook-id"] + "x"},
                     {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 1)}):
        with pytest.raises(WebhookVerificationError):
            webhook.verify(body, tampered)
    with pytest.raises(WebhookVerificationError):
        webhook.verify(body.replace(b"payment", b"paymenT", 1), headers)
    return event


async def test_every_event_of_a_whole_payment_arrives_signed_in_order_and_masked():
    secret = new_secret()
    call_sid = new_call()
    with receiving() as receiver:
        env = {"AGENT_PAYMENTS_WEBHOOK_URL": receiver.url, "AGENT_PAYMENTS_WEBHOOK_SECRET": secret}
        async with server(env, scripts={call_sid: {"payment-card-number": [CARD]}}) as (client, _):
            with anyio.fail_after(60):
                final = await run_payment(client, call_sid, chargeAmount="12.50", reference="conversation-7")
                assert final["phase"] == "completed", final
                await eventually(lambda: any(json.loads(b)["type"] == "payment.completed" for _, b in receiver.delivered()),
                                 "payment.completed delivered")
        events = [verified(secret, headers, body) for headers, body in receiver.delivered()]
        types = [event["type"] for event in events]
        assert types[0] == "payment.started" and types[-1] == "payment.completed", types
        for item in ("payment-card-number", "security-code", "expiration-date"):
            kinds = [event["type"] for event in events if event["data"]["item"] == item]
            assert kinds and kinds[0] == "payment.item.requested" and kinds[-1] == "payment.item.captured", (item, kinds)
        assert "payment.item.progress" in types, types
        versions = [event["data"]["version"] for event in events]
        assert versions == sorted(versions), f"in order: {versions}"
        assert len({event["id"] for event in events}) == len(events)
        validator = Draft202012Validator(SCHEMA)
        for event, (headers, body) in zip(events, receiver.delivered()):
            assert headers["webhook-id"] == event["id"]
            problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(event)]
            assert not problems, (event["type"], problems)
            assert event["data"]["reference"] == "conversation-7" and event["data"]["callSid"] == call_sid
            assert CARD.encode() not in body and CARD[:6].encode() not in body, "never card data"
        completed = events[-1]["data"]
        assert completed["status"]["paymentConfirmationCode"] and completed["nextStep"]["action"] == "tell-caller", completed


async def test_an_endpoint_that_fails_for_a_while_gets_everything_once_it_recovers():
    secret = new_secret()
    call_sid = new_call()
    # The first six requests fail (500), then every one succeeds.
    with receiving(lambda n: 500 if n < 6 else 204) as receiver:
        env = {"AGENT_PAYMENTS_WEBHOOK_URL": receiver.url, "AGENT_PAYMENTS_WEBHOOK_SECRET": secret,
               "AGENT_PAYMENTS_WEBHOOK_EVENTS": "payment.started,payment.item.captured,payment.completed",
               "AGENT_PAYMENTS_WEBHOOK_RETRY_FIRST_MS": "50"}
        async with server(env, scripts={call_sid: {"payment-card-number": [CARD]}}) as (client, _):
            with anyio.fail_after(90):
                final = await run_payment(client, call_sid, chargeAmount="5")
                assert final["phase"] == "completed", final
                await eventually(lambda: any(json.loads(b)["type"] == "payment.completed" for _, b in receiver.delivered()),
                                 "everything delivered once the endpoint recovered", seconds=60)
        delivered = [verified(secret, h, b) for h, b in receiver.delivered()]
        types = [event["type"] for event in delivered]
        assert types[0] == "payment.started" and types[-1] == "payment.completed", types
        assert set(types) <= {"payment.started", "payment.item.captured", "payment.completed"}, "the filter holds"
        ids = [event["id"] for event in delivered]
        assert len(ids) == len(set(ids)), "no event delivered twice (2xx) within one attempt"
        failed_ids = {h["webhook-id"] for h, _, status in receiver.requests if status >= 500}
        assert failed_ids <= set(ids), "every failed event was delivered later"


async def test_a_bad_webhook_configuration_stops_the_server_with_a_sentence():
    secret = new_secret()
    cases = [
        ({"AGENT_PAYMENTS_WEBHOOK_URL": "http://payments.example/hook", "AGENT_PAYMENTS_WEBHOOK_SECRET": secret}, "https"),
        ({"AGENT_PAYMENTS_WEBHOOK_URL": "https://payments.example/hook"}, "AGENT_PAYMENTS_WEBHOOK_SECRET"),
        ({"AGENT_PAYMENTS_WEBHOOK_URL": "https://payments.example/hook", "AGENT_PAYMENTS_WEBHOOK_SECRET": secret,
          "AGENT_PAYMENTS_WEBHOOK_EVENTS": "payment.nothing"}, "payment.nothing"),
    ]
    import subprocess
    for env_extra, words in cases:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_PAYMENTS_")}
        env.update(env_extra)
        done = subprocess.run([str(SERVER), "--simulate"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        assert done.returncode != 0 and done.stdout == "", (env_extra, done)
        assert words in done.stderr and secret not in done.stderr, (env_extra, done.stderr)


async def test_the_example_receiver_turns_events_into_what_the_agent_should_hear():
    """Examples/webhook-receiver/receiver.py, as a voice app would run it, beside a whole payment."""
    import subprocess
    import sys
    import urllib.request

    example = Path(__file__).resolve().parents[2] / "Examples" / "webhook-receiver" / "receiver.py"
    secret = new_secret()
    call_sid = new_call()
    env = {**os.environ, "AGENT_PAYMENTS_WEBHOOK_SECRET": secret}
    receiver = subprocess.Popen([sys.executable, str(example), "--port", "0"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        url = json.loads(receiver.stdout.readline())["listening"]
        # A forgery is refused: the example checks every signature.
        forged = urllib.request.Request(url, data=b'{"type":"payment.completed"}', method="POST",
                                        headers={"webhook-id": "evt_x", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,AAAA"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged, timeout=10)
        assert refused.value.code == 400
        async with server({"AGENT_PAYMENTS_WEBHOOK_URL": url, "AGENT_PAYMENTS_WEBHOOK_SECRET": secret},
                          scripts={call_sid: {"payment-card-number": [CARD]}}) as (client, _):
            with anyio.fail_after(60):
                final = await run_payment(client, call_sid, reference="conversation-9")
                assert final["phase"] == "completed", final
        lines: list[dict] = []
        with anyio.fail_after(20):
            while not lines or lines[-1]["type"] != "payment.completed":
                line = await anyio.to_thread.run_sync(receiver.stdout.readline)
                assert line, "the receiver stopped"
                lines.append(json.loads(line))
        assert all(line["reference"] == "conversation-9" for line in lines)
        said = {line["type"]: line["system_message"] for line in lines}
        assert said["payment.item.captured"].startswith("The caller finished entering the"), said
        assert said["payment.completed"].startswith("The payment went through."), said
        assert "payment.item.progress" not in said, "nothing is said while the caller types"
        assert all(CARD not in line["system_message"] for line in lines)
    finally:
        receiver.kill()
        receiver.wait()
