"""End to end: the official MCP Python SDK (mcp 2.3.0) drives the real agent-payments binary
in --simulate mode, in both protocol eras. Behind it: the built-in Twilio simulator over loopback
HTTP, a scripted caller, signed callbacks into the real callback receiver."""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import urllib.error
import urllib.request
import warnings
from contextlib import asynccontextmanager

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from jsonschema import Draft202012Validator

from conftest import BIN

pytestmark = pytest.mark.anyio
warnings.filterwarnings("ignore", category=DeprecationWarning)

SERVER = BIN / "agent-payments"
ERAS = ["legacy", "2026-07-28"]
CARD = "4111111111111111"


def new_call() -> str:
    return "CA" + secrets.token_hex(16)


@asynccontextmanager
async def server(mode: str, scripts: dict | None = None, on_message=None, logs: list | None = None):
    env = {**os.environ, "AGENT_PAYMENTS_SIMULATOR_PACING_MS": "0", "AGENT_PAYMENTS_LOG_LEVEL": "debug"}
    script_file = None
    if scripts:
        script_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(scripts, script_file)
        script_file.close()
        env["AGENT_PAYMENTS_SIMULATOR_SCRIPT"] = script_file.name
    errlog = tempfile.TemporaryFile("w+")

    async def on_log(params):
        if logs is not None:
            logs.append(str(params.data))

    params = StdioServerParameters(command=str(SERVER), args=["--simulate"], env=env)
    client = Client(stdio_client(params, errlog=errlog), mode=mode, message_handler=on_message, logging_callback=on_log,
                    log_level="debug" if mode != "legacy" else None)
    try:
        async with client:
            if mode == "legacy":
                await client.set_logging_level("debug")
            yield client, errlog
    finally:
        errlog.close()
        if script_file:
            os.unlink(script_file.name)


_output_schemas: dict[int, dict] = {}


async def output_schema(client, tool: str) -> dict:
    """The outputSchema the server declares for `tool` (listed once per client)."""
    if id(client) not in _output_schemas:
        listed = await client.list_tools()
        _output_schemas[id(client)] = {t.name: t.output_schema for t in listed.tools}
    return _output_schemas[id(client)][tool]


async def checked(client, tool: str, result):
    """Every tool result, success or refusal, as a voice framework that keeps only text would see
    it: exactly one text block holding one JSON object, the same object as structuredContent, with
    a message; a success conforms to the declared outputSchema; a refusal carries an error with a
    reason, a message, whether a retry may help and what to do."""
    assert len(result.content) == 1, result.content
    first = json.loads(result.content[0].text)
    assert first == result.structured_content
    assert isinstance(first.get("message"), str) and first["message"], first
    if result.is_error:
        assert {"reason", "message", "retryable", "whatToDo"} <= set(first["error"]), first
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in
                Draft202012Validator(await output_schema(client, tool)).iter_errors(result.structured_content)]
    assert not problems, (tool, problems)
    return result


async def call(client, tool: str, **arguments) -> dict:
    result = await checked(client, tool, await client.call_tool(tool, arguments))
    assert not result.is_error, result.content[-1].text
    return result.structured_content


async def refused(client, tool: str, **arguments) -> str:
    """Calls a tool that must refuse; returns its message."""
    result = await checked(client, tool, await client.call_tool(tool, arguments))
    assert result.is_error, result.structured_content
    return "\n".join(block.text for block in result.content)


async def settle(client, status: dict) -> dict:
    """Waits while the caller types (the server says when to wait)."""
    for _ in range(100):
        if not status["nextStep"]["waitForCaller"]:
            return status
        status = await call(client, "getPaymentStatus", paymentSid=status["paymentSid"], waitSeconds=5, afterVersion=status["version"])
    raise AssertionError(f"never settled: {status}")


async def run_payment(client, call_sid: str, **start) -> dict:
    """Follows nextStep from start to the end, as an agent would."""
    status = await call(client, "startPaymentCapture", callSid=call_sid, **start)
    for _ in range(20):
        tool = status["nextStep"].get("tool")
        if tool is None or not (tool.startswith("capture") or tool == "completePaymentCapture"):
            return status
        status = await settle(client, await call(client, tool, callSid=call_sid, paymentSid=status["paymentSid"]))
    raise AssertionError(f"too many steps: {status}")


@pytest.mark.parametrize("mode", ERAS)
async def test_tokenize_with_an_update_for_every_change(mode):
    updates: list[str] = []

    async def on_message(message):
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    call_sid = new_call()
    while "739" in call_sid:  # the random SID must not contain the security code the test searches for
        call_sid = new_call()
    logs: list[str] = []
    # A distinctive card and security code, so any leak would be found by a plain search.
    script = {call_sid: {"payment-card-number": ["4000056655665556"], "security-code": ["739"]}}
    async with server(mode, scripts=script, on_message=on_message, logs=logs) as (client, errlog):
        status = await call(client, "startPaymentCapture", callSid=call_sid)
        uri = f"payment://{call_sid}/{status['paymentSid']}/status"
        if mode == "legacy":
            await client.subscribe_resource(uri)
            status = await finish(client, call_sid, status)
        else:
            async with client.listen(resource_subscriptions=[uri]):
                status = await finish(client, call_sid, status)
        assert status["phase"] == "completed" and status["result"] == "success"
        assert status["paymentToken"].startswith("tok_sim_") and status["paymentCardNumber"] == "xxxxxxxxxxxx5556"
        assert status["securityCode"] == "xxx" and status["paymentCardType"] == "visa"
        read = await client.read_resource(uri)
        body = json.loads(read.contents[0].text)
        for key in ["paymentSid", "paymentCardNumber", "paymentCardType", "securityCode", "expirationDate", "result",
                    "paymentToken", "paymentMethod", "callSid", "items", "nextStep"]:
            assert key in body, key
        assert updates.count(uri) >= 10, f"only {updates.count(uri)} updates"
        errlog.seek(0)
        everything = errlog.read() + "\n".join(logs) + json.dumps(body)
        assert len(logs) > 0, "MCP log notifications were received and searched"
        # The whole number, and any 8 consecutive digits of it that are not the visible last four.
        assert "4000056655665556" not in everything
        for start in range(0, 16 - 8 - 4 + 1):
            assert "4000056655665556"[start:start + 8] not in everything, start
        assert not re.search(r"(?i)security.?code\W{0,4}[0-9]", everything), "no security code digit anywhere"
        assert "739" not in json.dumps(body)


async def finish(client, call_sid, status):
    for _ in range(20):
        tool = status["nextStep"].get("tool")
        if tool is None or not (tool.startswith("capture") or tool == "completePaymentCapture"):
            return status
        status = await settle(client, await call(client, tool, callSid=call_sid, paymentSid=status["paymentSid"]))
    return status


@pytest.mark.parametrize("mode", ERAS)
async def test_charge_an_amount(mode):
    async with server(mode) as (client, _):
        status = await run_payment(client, new_call(), chargeAmount=42.5, currency="usd")
        assert status["result"] == "success" and status["paymentConfirmationCode"].startswith("ch_sim_")
        assert status["chargeAmount"] == "42.5" and status["currency"] == "USD", "the number as given, never rounded"
        exact = await run_payment(client, new_call(), chargeAmount="19.999")
        assert exact["chargeAmount"] == "19.999" and exact["result"] == "success", "a decimal string is kept exactly"
        assert "charged" not in exact["nextStep"]["instruction"] or "confirmation code" in exact["nextStep"]["instruction"]
        free = await run_payment(client, new_call(), chargeAmount=0)
        assert free["result"] == "success" and free["paymentToken"].startswith("tok_sim_"), "0 tokenizes, as Twilio allows"
        assert "saved" in free["nextStep"]["instruction"]


@pytest.mark.parametrize("mode", ERAS)
async def test_every_create_option_reaches_twilio(mode):
    call_sid = new_call()
    async with server(mode) as (client, _):
        status = await call(client, "startPaymentCapture", callSid=call_sid, chargeAmount="1.00", currency="EUR", description="Order 7",
                            paymentConnector="Default", tokenType="one-time", securityCode=True, postalCode=True,
                            minPostalCodeLength=4, validCardTypes=["visa"], timeout=30, confirmation=False, input="dtmf",
                            parameter=[{"name": "AVSName", "value": "Ada Lovelace"}, {"name": "Retries", "value": "2"}])
        assert status["missing"] == ["payment-card-number", "security-code", "expiration-date", "postal-code"]
        message = await refused(client, "startPaymentCapture", callSid=new_call(), input="voice")
        assert "input" in message
        message = await refused(client, "startPaymentCapture", callSid=new_call(), parameter={"nested": {"no": 1}})
        assert "parameter" in message, "a free-form object is not the documented shape"
        message = await refused(client, "startPaymentCapture", callSid=new_call(), parameter=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}])
        assert "twice" in message


@pytest.mark.parametrize("mode", ERAS)
async def test_invalid_card_error_guidance_then_recapture(mode):
    call_sid = new_call()
    async with server(mode, scripts={call_sid: {"payment-card-number": ["4111111111111112", "silence"]}}) as (client, _):
        status = await call(client, "startPaymentCapture", callSid=call_sid)
        sid = status["paymentSid"]
        status = await settle(client, await call(client, "captureCardNumber", callSid=call_sid, paymentSid=sid))
        assert status["items"]["payment-card-number"]["errorType"] == "invalid-card-number"
        assert status["nextStep"] == {"tool": "captureCardNumber", "prompt": "Error", "instruction": status["nextStep"]["instruction"], "waitForCaller": False,
                                      "arguments": {"callSid": call_sid, "paymentSid": sid, "waitSeconds": 3}}
        guidance = await client.get_prompt("Error", {"paymentSid": sid})
        assert "card number was not valid" in guidance.messages[0].content.text
        status = await settle(client, await call(client, "captureCardNumber", callSid=call_sid, paymentSid=sid))
        assert status["items"]["payment-card-number"]["errorType"] == "input-timeout"
        status = await finish(client, call_sid, status)
        assert status["result"] == "success"
        assert status["items"]["payment-card-number"]["failedAttempts"] == 2


@pytest.mark.parametrize("mode", ERAS)
async def test_hang_up_and_decline_and_cancel(mode):
    hang, decline, cancel = new_call(), new_call(), new_call()
    scripts = {hang: {"expiration-date": ["hang-up"]}, decline: {"completion": "decline"}}
    async with server(mode, scripts=scripts) as (client, _):
        status = await run_payment(client, hang)
        assert status["phase"] == "call-ended" and status["result"] == "caller-hung-up"
        assert "tool" not in status["nextStep"] and "call has ended" in status["nextStep"]["instruction"]
        status = await run_payment(client, decline, chargeAmount="10.00")
        assert status["phase"] == "failed" and status["failure"]["payErrorCode"] == 64012
        assert status["failure"]["paymentError"] == "card_declined"
        status = await call(client, "startPaymentCapture", callSid=cancel)
        status = await call(client, "cancelPaymentCapture", callSid=cancel, paymentSid=status["paymentSid"])
        assert status["phase"] == "cancelled"
        assert "ended" in await refused(client, "captureCardNumber", callSid=cancel, paymentSid=status["paymentSid"])


@pytest.mark.parametrize("mode", ERAS)
async def test_a_silent_hang_up_is_noticed_before_the_next_command(mode):
    call_sid = new_call()
    async with server(mode, scripts={call_sid: {"expiration-date": ["hang-up-silently"]}}) as (client, _):
        status = await call(client, "startPaymentCapture", callSid=call_sid)
        sid = status["paymentSid"]
        for tool in ["captureCardNumber", "captureSecurityCode"]:
            status = await settle(client, await call(client, tool, callSid=call_sid, paymentSid=sid))
        status = await call(client, "captureExpirationDate", callSid=call_sid, paymentSid=sid)
        # No callback says the caller is gone; the next command asks Twilio for the call first.
        message = await refused(client, "completePaymentCapture", callSid=call_sid, paymentSid=sid)
        assert "has ended" in message
        status = await call(client, "getPaymentStatus", paymentSid=sid)
        assert status["phase"] == "call-ended" and "call has ended" in status["nextStep"]["instruction"]


@pytest.mark.parametrize("mode", ERAS)
async def test_matching_inputs_are_captured_twice(mode):
    call_sid = new_call()
    scripts = {call_sid: {"payment-card-number-matcher": ["4111111111111112", "4111111111111111"]}}
    async with server(mode, scripts=scripts) as (client, _):
        status = await call(client, "startPaymentCapture", callSid=call_sid, requireMatchingInputs=["payment-card-number"])
        assert status["missing"][:2] == ["payment-card-number", "payment-card-number-matcher"]
        sid = status["paymentSid"]
        seen_matcher_failure = False
        for _ in range(20):
            step = status["nextStep"]
            tool = step.get("tool")
            if tool is None or not (tool.startswith("capture") or tool == "completePaymentCapture"):
                break
            # nextStep's arguments are the complete call, the SIDs and captureType included.
            assert step["arguments"]["paymentSid"] == sid and step["arguments"]["callSid"] == call_sid
            status = await settle(client, await call(client, tool, **step["arguments"]))
            matcher = status["items"]["payment-card-number-matcher"]
            seen_matcher_failure |= matcher.get("errorType") == "input-matching-failed"
        assert seen_matcher_failure, "the first confirmation did not match and was captured again"
        assert status["phase"] == "completed" and status["items"]["payment-card-number-matcher"]["state"] == "captured"


@pytest.mark.parametrize("mode", ERAS)
async def test_ach_payment(mode):
    async with server(mode) as (client, _):
        status = await run_payment(client, new_call(), paymentMethod="ach-debit", bankAccountType="consumer-checking", chargeAmount=5)
        assert status["result"] == "success"
        assert status["bankRoutingNumber"] == "121000358" and status["bankAccountNumber"].endswith("89")
        assert "123456789" not in json.dumps(status)


async def test_two_concurrent_calls_never_mix():
    first, second = new_call(), new_call()
    async with server("2026-07-28", scripts={second: {"payment-card-number": ["5555555555554444"]}}) as (client, _):
        results = {}

        async def pay(call_sid):
            results[call_sid] = await run_payment(client, call_sid, validCardTypes=["visa", "mastercard"])

        async with anyio.create_task_group() as group:
            group.start_soon(pay, first)
            group.start_soon(pay, second)
        assert results[first]["callSid"] == first and results[first]["paymentCardType"] == "visa"
        assert results[second]["callSid"] == second and results[second]["paymentCardType"] == "mastercard"
        assert results[first]["paymentSid"] != results[second]["paymentSid"]


async def test_a_callback_to_an_unknown_url_is_refused_before_the_url_is_checked():
    """Signatures are checked before the secret path, so a prober learns nothing about which URLs
    exist. (A forgery to a session's real URL, with a positive control, is in test_live_mode.py.)"""
    call_sid = new_call()
    async with server("2026-07-28") as (client, errlog):
        status = await call(client, "startPaymentCapture", callSid=call_sid)
        # The server logs its callback port once the callback server is up; wait for that line.
        found = None
        with anyio.fail_after(10):
            while found is None:
                errlog.seek(0)
                found = re.search(r"callbacks\.port=(\d+)", errlog.read())
                if found is None:
                    await anyio.sleep(0.01)
        port = int(found.group(1))
        forged = urllib.parse.urlencode({"Sid": status["paymentSid"], "Result": "success", "PaymentToken": "forged"}).encode()
        for secret in ["0" * 32, secrets.token_hex(16)]:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/twilio/payment-callbacks/{secret}", data=forged,
                                             headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            assert refused.value.code == 403
        after = await call(client, "getPaymentStatus", paymentSid=status["paymentSid"])
        assert after["phase"] == "active" and after["version"] == status["version"] and "paymentToken" not in after


def test_what_a_client_sends_with_its_handshake_finds_every_tool():
    """The server answers `initialize` while it still makes its payments system and tools
    (Serve.Beginning in Sources/agent-payments): whatever a client sends at once with it waits
    for them, in order. Sent in one write as the process starts, in both eras, several times."""
    import subprocess

    legacy = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "eager", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    modern_meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
                   "io.modelcontextprotocol/clientInfo": {"name": "eager", "version": "1"}}
    asks = lambda meta: [
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": meta},
        {"jsonrpc": "2.0", "id": 3, "method": "prompts/list", "params": meta},
        {"jsonrpc": "2.0", "id": 4, "method": "resources/templates/list", "params": meta},
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
            "name": "getPaymentStatus", "arguments": {"paymentSid": "PK" + "0" * 32}, **meta}}]
    discover = [{"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": modern_meta}}]
    for era, messages in [("legacy", legacy + asks({})), ("2026-07-28", discover + asks({"_meta": modern_meta}))] * 4:
        proc = subprocess.Popen([str(SERVER), "--simulate"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env={**os.environ, "AGENT_PAYMENTS_LOG_LEVEL": "error"})
        try:
            proc.stdin.write(b"".join(json.dumps(message).encode() + b"\n" for message in messages))
            proc.stdin.flush()
            answers = []
            while len(answers) < len([m for m in messages if "id" in m]):
                answers.append(json.loads(proc.stdout.readline()))
        finally:
            proc.stdin.close()
            proc.wait(timeout=10)
        by_id = {answer["id"]: answer for answer in answers}
        assert [answer["id"] for answer in answers] == sorted(by_id), (era, "answered in order")
        # Answered before the tools are in, the handshake declares what is about to be registered.
        assert {"tools", "prompts", "resources", "completions"} <= set(by_id[1]["result"]["capabilities"]), era
        assert len(by_id[2]["result"]["tools"]) == 10, era
        assert {prompt["name"] for prompt in by_id[3]["result"]["prompts"]} >= {"StartCapture", "FinishCapture"}, era
        assert by_id[4]["result"]["resourceTemplates"], era
        text = by_id[5]["result"]["content"][0]["text"]
        assert by_id[5]["result"]["isError"] and "No payment session" in text, (era, text[:200])


def test_a_client_that_leaves_after_the_handshake_is_answered_and_the_server_exits_0():
    """The end of input may come before the server has started its parts (a client that only
    handshakes): what it asked is answered, nothing else is written, and the process exits 0,
    whether the group ran or was never started (Serve.serve)."""
    import subprocess

    lines = (b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
             b'"capabilities":{},"clientInfo":{"name":"brief","version":"1"}}}\n'
             b'{"jsonrpc":"2.0","id":2,"method":"ping"}\n')
    for round in range(10):
        proc = subprocess.Popen([str(SERVER), "--simulate"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env={**os.environ, "AGENT_PAYMENTS_LOG_LEVEL": "info"})
        out, _ = proc.communicate(lines, timeout=20)
        answers = [json.loads(line) for line in out.splitlines()]
        assert [answer["id"] for answer in answers] == [1, 2] and all("result" in a for a in answers), (round, answers)
        assert proc.returncode == 0, (round, proc.returncode)


def test_shutdown_on_eof_sigterm_and_sigint_is_clean():
    """Each way of stopping ends the process with status 0 once everything is up. How fast is a
    benchmark figure ("exit after stdin EOF" in Benchmarks/run), not asserted here."""
    import signal
    import subprocess

    for how in ["eof", signal.SIGTERM, signal.SIGINT]:
        proc = subprocess.Popen([str(SERVER), "--simulate"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "AGENT_PAYMENTS_LOG_LEVEL": "info"})
        proc.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}\n')
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())
        assert first["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "agent-payments"
        # Stop only once the callback server and the simulator are up (the server says so).
        for line in proc.stderr:
            if b"payment system ready" in line:
                break
        else:
            raise AssertionError("the server never said its payment system was ready")
        if how == "eof":
            proc.stdin.close()
        else:
            proc.send_signal(how)
        assert proc.wait(timeout=10) == 0, how
        assert proc.stdout.read() == b"", "nothing after the last MCP message"


def test_every_bad_input_gets_an_actionable_message_and_a_usage_status():
    import subprocess

    cases = [
        ([], {}, "Twilio credentials are missing"),
        (["ACnope", "SK" + "0" * 32, "secret"], {}, "expected AC followed by 32 hex digits"),
        (["AC" + "0" * 32, "SK" + "0" * 32], {}, "expected three arguments"),
        (["AC" + "0" * 32, "SK" + "0" * 32, "secret"], {}, "CALLBACK_BASE_URL"),
        (["--simulate"], {"TOKEN_TYPE": "forever"}, "TOKEN_TYPE must be one-time, reusable or payment-method"),
        (["--simulate"], {"CURRENCY": "dollars"}, "CURRENCY must be a three-letter"),
        (["--simulate", "AC" + "0" * 32], {}, "takes no credentials"),
    ]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "NGROK_", "CALLBACK_"))}
    for args, extra, message in cases:
        out = subprocess.run([str(SERVER), *args], env={**clean, **extra}, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
        assert out.returncode == 64, (args, out.returncode, out.stderr)
        assert message in out.stderr, (args, out.stderr)
        assert out.stdout == "", "nothing but MCP messages on stdout"
    secret = "s3cr3t-value-" + secrets.token_hex(4)
    out = subprocess.run([str(SERVER), "AC" + "0" * 32, "SK" + "0" * 32, secret], env=clean, capture_output=True, text=True, timeout=10)
    assert secret not in out.stderr
    version = subprocess.run([str(SERVER), "--version"], capture_output=True, text=True, timeout=10)
    assert version.returncode == 0 and re.match(r"\d+\.\d+\.\d+", version.stdout)


def test_sigterm_ends_an_open_listen_stream_with_its_result_then_exits():
    """A graceful stop while the payments system may still be starting: the spec says a server
    SHOULD end subscriptions/listen streams with a result before it shuts down; queued messages
    are written before the process exits, with status 0, within a bound."""
    import signal
    import subprocess
    import threading

    from conftest import MODERN_META

    for round in range(5):
        proc = subprocess.Popen([str(SERVER), "--simulate"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env={**os.environ, "AGENT_PAYMENTS_LOG_LEVEL": "warning"})
        try:
            def send(message):
                proc.stdin.write(json.dumps(message).encode() + b"\n")
                proc.stdin.flush()

            send({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": MODERN_META}})
            assert json.loads(proc.stdout.readline())["id"] == 1
            send({"jsonrpc": "2.0", "id": 7, "method": "subscriptions/listen",
                  "params": {"_meta": MODERN_META, "notifications": {"resourcesListChanged": True}}})
            acknowledged = json.loads(proc.stdout.readline())
            assert acknowledged.get("method", "").startswith("notifications/"), acknowledged  # the stream is open
            proc.send_signal(signal.SIGTERM)
            # Standard input stays open (closing it would be an end of input, a different stop);
            # a watchdog kills a process that does not exit, so the test fails instead of hanging.
            watchdog = threading.Timer(10, proc.kill)
            watchdog.start()
            try:
                out = proc.stdout.read()
            finally:
                watchdog.cancel()
            rest = [json.loads(line) for line in out.splitlines() if line.strip()]
            assert any(m.get("id") == 7 and "result" in m for m in rest), f"round {round}: the listen stream got no result: {rest}"
            assert proc.wait(timeout=10) == 0, f"round {round}: exit status {proc.returncode}"
        finally:
            if proc.poll() is None:
                proc.kill()


def test_without_libcurl_the_server_says_what_to_install_and_stops(tmp_path):
    """libcurl is loaded on first use (Sources/LazyCurl), not by the dynamic loader: MCP still
    answers at once, and a machine whose libcurl cannot be loaded gets a message naming it at
    start-up and a failure status, not a crash in the middle of a payment."""
    import subprocess

    (tmp_path / "libcurl.so.4").write_bytes(b"not a shared library\n")
    proc = subprocess.Popen([str(SERVER), "--simulate"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "LD_LIBRARY_PATH": str(tmp_path), "AGENT_PAYMENTS_LOG_LEVEL": "warning"})
    try:
        proc.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}\n')
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["id"] == 1, "MCP answers before libcurl is needed"
        status = proc.wait(timeout=20)
        stderr = proc.stderr.read().decode()
        assert status != 0, stderr
        assert "libcurl.so.4 could not be loaded" in stderr and "apt-get install libcurl4" in stderr, stderr
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_a_busy_callback_port_leaves_mcp_answering_and_tools_saying_why():
    """A part of the payments system that cannot start (here: the callback port is taken) does
    not take MCP down with it: the tools answer, refusing with the typed reason and the address."""
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        env = {**os.environ, "CALLBACK_PORT": str(port), "AGENT_PAYMENTS_LOG_LEVEL": "warning"}
        errlog = tempfile.TemporaryFile("w+")
        client = Client(stdio_client(StdioServerParameters(command=str(SERVER), args=["--simulate"], env=env), errlog=errlog), mode="2026-07-28")
        async with client:
            assert {t.name for t in (await client.list_tools()).tools} >= {"startPaymentCapture", "getPaymentStatus"}
            message = await refused(client, "startPaymentCapture", callSid=new_call())
            assert f"could not listen on 127.0.0.1:{port}" in message and "CALLBACK_PORT" in message, message
            assert json.loads(message.split("\n")[0])["error"]["reason"] == "callback-unavailable"
        errlog.close()
    finally:
        holder.close()
