"""Live mode end to end: the real agent-payments binary with Twilio credentials, its API base
URL pointed at the standalone twilio-simulator over loopback HTTP, callbacks signed with the
Auth Token and checked by the server, and the official MCP Python SDK as the agent.

Secrets and a full card number are planted everywhere an attacker or a bug could put them: in
the stand-in's error messages, in tool arguments, in callback fields and headers. None may
reach stdout, stderr, MCP log messages, tool results or the status resource."""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
from contextlib import asynccontextmanager

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from twilio.request_validator import RequestValidator

from conftest import BIN
from test_agent_payments_e2e import call, new_call, refused, settle

pytestmark = pytest.mark.anyio
warnings.filterwarnings("ignore", category=DeprecationWarning)

CARD = "4111111111111111"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Simulator:
    """The standalone twilio-simulator: its start line, then one line per payment created."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([str(BIN / "twilio-simulator"), "--pacing-ms", "0", "--report-payments", "--leak-into-errors",
                                      *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.info = json.loads(self.proc.stdout.readline())
        self.payments: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            if event.get("event") == "payment-created":
                self.payments.put(event)

    def next_payment(self) -> dict:
        return self.payments.get(timeout=10)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture
def simulator():
    sim = Simulator()
    yield sim
    sim.close()


@asynccontextmanager
async def live_server(sim: Simulator, seen: list):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "NGROK_", "CALLBACK_"))}
    env.update({
        "TWILIO_ACCOUNT_SID": sim.info["accountSid"], "TWILIO_API_KEY": sim.info["apiKey"],
        "TWILIO_API_SECRET": sim.info["apiSecret"], "TWILIO_AUTH_TOKEN": sim.info["authToken"],
        "TWILIO_API_BASE_URL": sim.info["baseURL"], "CALLBACK_PORT": str(port), "CALLBACK_BASE_URL": f"http://127.0.0.1:{port}",
        "AGENT_PAYMENTS_LOG_LEVEL": "debug",
    })
    errlog = tempfile.TemporaryFile("w+")

    async def on_message(message):
        seen.append(repr(message))

    async def on_log(params):
        seen.append(str(params.data))

    client = Client(stdio_client(StdioServerParameters(command=str(BIN / "agent-payments"), env=env), errlog=errlog),
                    mode="legacy", message_handler=on_message, logging_callback=on_log)
    try:
        async with client:
            await client.set_logging_level("debug")
            yield client, errlog, port
    finally:
        errlog.seek(0)
        seen.append(errlog.read())
        errlog.close()


def post(url: str, fields: dict, signature: str, headers: dict | None = None) -> int:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def plantable(*values: str) -> str:
    """The first of `values` (random hex secrets) that a tool argument may carry: about one in a
    hundred holds a Luhn-valid run of 12 digits, which tools refuse as card data."""
    return next((value for value in values if not re.search(r"\d{12}", value)), values[0])


async def test_a_live_payment_with_signed_callbacks_leaks_nothing(simulator):
    seen: list[str] = []
    secrets = {"api secret": simulator.info["apiSecret"], "auth token": simulator.info["authToken"]}
    validator = RequestValidator(simulator.info["authToken"])
    async with live_server(simulator, seen) as (client, errlog, port):
        # 1. A whole payment, following nextStep, with planted values in the tool arguments. A card
        # number in any argument is refused unquoted (and reaches nothing at Twilio: the payment the
        # stand-in reports next is the second start's).
        call_sid = new_call()
        message = await refused(client, "startPaymentCapture", callSid=call_sid, chargeAmount="7.25",
                                description=f"order {CARD} {secrets['api secret']}")
        assert "card-data-refused" in message, message
        seen.append(message)
        status = await call(client, "startPaymentCapture", callSid=call_sid, chargeAmount="7.25",
                            description=f"order {plantable(secrets['api secret'], secrets['auth token'])}")
        created = simulator.next_payment()
        assert created["paymentSid"] == status["paymentSid"]
        callback_url = created["statusCallback"]
        secrets["callback secret"] = callback_url.rsplit("/", 1)[-1]
        assert callback_url.startswith(f"http://127.0.0.1:{port}/")
        seen.append(json.dumps(status))
        sid = status["paymentSid"]
        for _ in range(10):
            tool = status["nextStep"].get("tool")
            if tool is None or not tool.startswith("capture"):
                break
            status = await settle(client, await call(client, tool, callSid=call_sid, paymentSid=sid))
            seen.append(json.dumps(status))
        assert status["nextStep"]["tool"] == "completePaymentCapture", status
        before = await call(client, "getPaymentStatus", paymentSid=sid)

        # 2. A forged callback to the session's real URL: refused, and nothing changes.
        forged = {"Sid": sid, "CallSid": call_sid, "Result": "success", "PaymentConfirmationCode": "forged"}
        assert post(callback_url, forged, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=") == 403
        assert post(callback_url, forged, validator.compute_signature(callback_url + "x", forged)) in (403, 404)
        after = await call(client, "getPaymentStatus", paymentSid=sid)
        assert after["version"] == before["version"] and after["phase"] == "active"

        # The same URL accepts what Twilio signed: the refusal above was the signature's doing.
        # Planted: a full card number in a callback field, secrets in an unknown field and a header.
        genuine = {"Sid": sid, "CallSid": call_sid, "AccountSid": simulator.info["accountSid"], "Capture": "payment-card-number",
                   "PartialResult": "false", "PaymentCardNumber": CARD, "PaymentCardType": "mastercard", "Note": secrets["api secret"],
                   "ConnectorError": secrets["auth token"], "Required": ""}
        assert post(callback_url, genuine, validator.compute_signature(callback_url, genuine),
                    headers={"X-Leak": secrets["auth token"], "User-Agent": f"TwilioProxy {CARD}"}) == 204
        status = await call(client, "getPaymentStatus", paymentSid=sid)
        assert status["version"] > after["version"] and status["paymentCardType"] == "mastercard"
        assert status["paymentCardNumber"] == "xxxxxxxxxxxx1111"
        seen.append(json.dumps(status))

        status = await settle(client, await call(client, "completePaymentCapture", callSid=call_sid, paymentSid=sid))
        assert status["phase"] == "completed" and status["paymentConfirmationCode"].startswith("ch_sim_")
        seen.append(json.dumps(status))

        # 3. The stand-in's error messages carry every secret and a card number (--leak-into-errors);
        # a planted tool argument is echoed back by it too.
        message = await refused(client, "startPaymentCapture", callSid=new_call(),
                                paymentConnector=f"conn-{plantable(secrets['auth token'], secrets['api secret'])}")
        assert "64004" in message or "Pay Connector" in message, message
        seen.append(message)
        read = await client.read_resource(f"payment://{call_sid}/{sid}/status")
        seen.append(read.contents[0].text)
        prompt = await client.get_prompt("Error", {"paymentSid": sid})
        seen.append(prompt.messages[0].content.text)

    everything = "\n".join(seen)
    assert "Invalid Pay Connector" in everything, "the planted error reached the agent, redacted"
    for name, value in {**secrets, "card number": CARD}.items():
        assert value not in everything, f"the {name} leaked"


async def test_a_sustained_throttle_is_a_retryable_refusal_and_counted():
    """Twilio's throttling (issue 29): the stand-in answers every request with HTTP 429 and error
    20429 (`Retry-After: 0`). The create is tried four times with one idempotency key, then the
    tool refuses with reason `twilio-throttled`, retryable, saying Twilio is throttling; the
    attempts and the give-up are counted in /metrics (read with prometheus-client's parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    simulator = Simulator("--throttle", "always", "--retry-after", "0")
    try:
        seen: list[str] = []
        async with live_server(simulator, seen) as (client, errlog, port):
            result = await client.call_tool("startPaymentCapture", {"callSid": new_call()})
            assert result.is_error, result.structured_content
            error = json.loads(result.content[0].text)["error"]
            assert error["reason"] == "twilio-throttled" and error["retryable"] is True, error
            assert error["message"].startswith("Twilio is throttling this account's requests"), error
            assert "4 attempts refused" in error["message"], error
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                families = {family.name: family for family in text_string_to_metric_families(response.read().decode())}

            def value(name: str, **labels) -> float:
                return sum(sample.value for sample in families[name].samples
                           if sample.name.endswith("_total") and all(sample.labels.get(k) == v for k, v in labels.items()))

            assert value("agent_payments_twilio_throttled", operation="create_payment") == 1
            assert value("agent_payments_twilio_requests", operation="create_payment", status="429") == 4
    finally:
        simulator.close()
