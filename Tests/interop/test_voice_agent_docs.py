"""Docs/voice-agents.md runs as written.

Every ```python block of the page runs in its own Python process (this interpreter: the .venv's
under scripts/test) against one `agent-payments --simulate --http 127.0.0.1:0` that requires a
bearer token, with AGENT_PAYMENTS_URL, AGENT_PAYMENTS_TOKEN and a fresh CALL_SID in its
environment. A block that exits with an error fails its test. No model and no network beyond
loopback: OpenAI tracing is off (OPENAI_AGENTS_DISABLE_TRACING=1), OPENAI_API_KEY is a dummy,
and a sitecustomize in each process refuses, and records, every name lookup and connection that
is not loopback, so a block that reaches out fails (the guard is tested too). A block that
starts a payment must leave a session on its call; a block that follows nextStep in a loop must
complete it. The page's ```json examples must be what the server answers to the same calls now,
SIDs and times aside. Tool names the page mentions must be the server's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from jsonschema import Draft202012Validator
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import ROOT
from test_agent_payments_e2e import new_call
from test_http import clean_env, http_server

pytestmark = pytest.mark.anyio

PAGE = ROOT / "Docs" / "voice-agents.md"
TOKEN = "docs-" + os.urandom(16).hex()
SNIPPET_SECONDS = 60
BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
HEADING = re.compile(r"^#+ +(.+)$", re.M)
# A loop that calls whatever nextStep names: the page's "the loop a model runs".
FOLLOWS_NEXT_STEP = re.compile(r"while\b.*\[\"nextStep\"\]", re.S)
# A call of startPaymentCapture (its name as a string literal, not in a prompt's prose).
STARTS = re.compile(r"[\"']startPaymentCapture[\"']")
# Names shaped like this server's tools (startPaymentCapture, captureCardNumber, …).
TOOL_NAME = re.compile(r"\b(?:start|capture|complete|cancel|get)(?:Payment|Card|Security|Expiration|Postal|Bank)[A-Za-z]*\b")
VOLATILE = ("updatedAt", "version")

# Refuses name lookups and connections that are not loopback, and writes each to
# $SNIPPET_NETWORK_LOG, so a refusal a library swallows (a background exporter) is still seen.
GUARD = textwrap.dedent('''
    import os, socket

    _LOG = os.environ.get("SNIPPET_NETWORK_LOG")

    def _loopback(host):
        if isinstance(host, bytes):
            host = host.decode()
        return host in (None, "", "localhost", "::1") or str(host).startswith("127.")

    def _refuse(what):
        if _LOG:
            with open(_LOG, "a") as log:
                log.write(what + "\\n")
        raise OSError(f"refused {what}: documentation snippets may only reach loopback")

    _getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if not _loopback(host):
            _refuse(f"name lookup of {host!r}")
        return _getaddrinfo(host, *args, **kwargs)

    _connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex

    def _check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            _refuse(f"connection to {address!r}")

    def connect(self, address):
        _check(self, address)
        return _connect(self, address)

    def connect_ex(self, address):
        _check(self, address)
        return _connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
''')


def page_text() -> str:
    return PAGE.read_text() if PAGE.is_file() else ""


def blocks(language: str) -> list[tuple[str, str]]:
    """(the heading above it, its code) for every fenced block of `language` on the page."""
    text, found = page_text(), []
    for match in BLOCK.finditer(text):
        if match.group(1) == language:
            headings = HEADING.findall(text, 0, match.start())
            found.append((headings[-1] if headings else "(top)", match.group(2)))
    return found


SNIPPETS = blocks("python")


def snippet_id(index: int) -> str:
    heading = SNIPPETS[index][0]
    return f"{index + 1}-" + re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


@pytest.fixture(scope="module")
def served():
    """One server for the page: loopback, a bearer token required, a quick simulated caller."""
    with http_server({"AGENT_PAYMENTS_HTTP_TOKENS": TOKEN, "AGENT_PAYMENTS_SIMULATOR_PACING_MS": "20",
                      "AGENT_PAYMENTS_LOG_LEVEL": "warning"}) as running:
        yield running


@pytest.fixture(scope="module")
def guard_dir():
    with tempfile.TemporaryDirectory(prefix="snippet-guard-") as directory:
        Path(directory, "sitecustomize.py").write_text(GUARD)
        yield directory


def snippet_env(url: str, call_sid: str, guard: str, network_log: str) -> dict:
    """What a reader's shell would hold, and no more: the runner's environment without
    agent-payments, Twilio, proxy or OpenAI settings, plus the page's three variables."""
    env = {k: v for k, v in clean_env().items()
           if not k.upper().endswith("_PROXY") and not k.startswith(("OPENAI_", "PYTHON"))}
    env.update({
        "AGENT_PAYMENTS_URL": url, "AGENT_PAYMENTS_TOKEN": TOKEN, "CALL_SID": call_sid,
        "OPENAI_AGENTS_DISABLE_TRACING": "1",          # the Agents SDK exports traces to OpenAI by default
        "OPENAI_API_KEY": "sk-test-not-a-key",          # a client may be built; none may be called
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONPATH": guard, "SNIPPET_NETWORK_LOG": network_log, "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def run_python(code: str, env: dict, cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=SNIPPET_SECONDS, stdin=subprocess.DEVNULL)


@asynccontextmanager
async def mcp_client(url: str, call_sid: str | None = None):
    """The official MCP SDK, for the test's own look at the server."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if call_sid:
        headers["X-Twilio-Call-Sid"] = call_sid
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0)) as http:
        async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=30) as client:
            yield client


async def call(client, tool: str, arguments: dict) -> tuple[bool, dict]:
    result = await client.call_tool(tool, arguments)
    assert len(result.content) == 1, result.content
    return result.is_error, json.loads(result.content[0].text)


def test_the_page_shows_each_framework_in_python():
    """The page exists and has Python blocks: the OpenAI Agents SDK, LiveKit and Pipecat wiring,
    a system prompt passed as instructions, and a loop that follows nextStep."""
    assert PAGE.is_file(), f"{PAGE} is missing"
    codes = [code for _, code in SNIPPETS]
    assert codes, f"{PAGE.name} has no ```python blocks to run"
    wanted = {"OpenAI Agents SDK": "from agents.mcp import MCPServerStreamableHttp", "LiveKit": "from livekit.agents.llm import mcp",
              "Pipecat": "from pipecat.services.mcp_service import MCPClient", "a system prompt": "instructions=PAYMENT_AGENT_PROMPT"}
    missing = [what for what, marker in wanted.items() if not any(marker in code for code in codes)]
    assert not missing, f"no Python block shows {missing}"
    assert any(FOLLOWS_NEXT_STEP.search(code) for code in codes), "no Python block follows nextStep in a loop"
    headers = [code for code in codes if "AGENT_PAYMENTS_URL" in code]
    assert all("X-Twilio-Call-Sid" in code and "AGENT_PAYMENTS_TOKEN" in code for code in headers), \
        "every block that connects sends the bearer token and the X-Twilio-Call-Sid header"


@pytest.mark.parametrize("index", range(len(SNIPPETS)), ids=snippet_id)
async def test_python_block_runs(index, served, guard_dir, tmp_path):
    """The block runs to its end (exit status 0) with nothing but loopback, on a call of its own.
    A block that starts a payment leaves that call with a session; one that follows nextStep in a
    loop leaves it completed, with a token."""
    heading, code = SNIPPETS[index]
    call_sid, network_log = new_call(), str(tmp_path / "network.log")
    env = snippet_env(served.mcp, call_sid, guard_dir, network_log)
    done = await anyio.to_thread.run_sync(lambda: run_python(code, env, str(tmp_path)))
    shown = f"block {index + 1} (under '{heading}'):\n{code}\n--- stdout:\n{done.stdout[-3000:]}\n--- stderr:\n{done.stderr[-6000:]}"
    assert done.returncode == 0, f"exit status {done.returncode}: {shown}"
    reached = Path(network_log).read_text() if Path(network_log).exists() else ""
    assert not reached, f"reached beyond loopback:\n{reached}\n{shown}"
    if STARTS.search(code):
        async with mcp_client(served.mcp, call_sid) as client:
            refused, status = await call(client, "getPaymentStatus", {})
        assert not refused, f"no payment session on the block's call afterwards: {status}\n{shown}"
        if FOLLOWS_NEXT_STEP.search(code):
            assert status["phase"] == "completed" and str(status.get("paymentToken", "")).startswith("tok_sim_"), \
                f"following nextStep did not complete the payment: {status}\n{shown}"
            assert status["paymentToken"] in done.stdout, shown


def test_the_network_guard_refuses_all_but_loopback(served, guard_dir, tmp_path):
    """Control for the guard every block runs under: a public name is refused and recorded,
    looked up directly or from an event loop, and so is a connection to a public address; the
    server on loopback is reachable."""
    network_log = str(tmp_path / "network.log")
    env = snippet_env(served.mcp, new_call(), guard_dir, network_log)
    probes = {"api.openai.com": "import urllib.request; urllib.request.urlopen('https://api.openai.com/v1/models', timeout=5)",
              "cloud.livekit.io": "import asyncio; asyncio.run(asyncio.open_connection('cloud.livekit.io', 443))",
              "192.0.2.1": "import socket; socket.create_connection(('192.0.2.1', 443), timeout=5)"}
    for target, probe in probes.items():
        outside = run_python(probe, env, str(tmp_path))
        assert outside.returncode != 0 and "documentation snippets may only reach loopback" in outside.stderr, outside.stderr[-2000:]
        assert target in Path(network_log).read_text(), f"{target} was not recorded"
        Path(network_log).unlink()
    inside = run_python(f"import urllib.request; assert urllib.request.urlopen('{served.base}/healthz', timeout=5).status == 200", env, str(tmp_path))
    assert inside.returncode == 0, inside.stderr[-2000:]
    assert not Path(network_log).exists(), Path(network_log).read_text()


def normalized(obj: dict) -> dict:
    """`obj` with what differs between runs replaced: call and payment SIDs, times, versions."""
    text = re.sub(r"CA[0-9a-fA-F]{32}", "CA<call>", json.dumps(obj))
    text = re.sub(r"PK[0-9a-fA-F]{32}", "PK<payment>", text)
    value = json.loads(text)
    for key in VOLATILE:
        if key in value:
            value[key] = f"<{key}>"
    return value


async def test_json_examples_are_what_the_server_answers(served):
    """The page's ```json blocks are a success (startPaymentCapture with the call SID in the
    header) and a refusal (completePaymentCapture before any capture): each must equal the
    server's answer to that call now, field by field, SIDs, times and versions aside."""
    examples = [json.loads(code) for _, code in blocks("json")]
    # A webhook event example (payment.*) must be one the event schema accepts.
    events = [example for example in examples if str(example.get("type", "")).startswith("payment.")]
    schema = Draft202012Validator(json.loads((ROOT / "Docs" / "payment-events.schema.json").read_text()))
    for event in events:
        problems = [f"{list(e.absolute_path)}: {e.message}" for e in schema.iter_errors(event)]
        assert not problems, f"the page's {event['type']} event does not match Docs/payment-events.schema.json: {problems}"
    examples = [example for example in examples if example not in events]
    successes = [example for example in examples if "error" not in example]
    refusals = [example for example in examples if "error" in example]
    assert len(successes) == 1 and len(refusals) == 1, f"expected one success and one refusal example, got {len(examples)} blocks"
    async with mcp_client(served.mcp, new_call()) as client:
        refused, started = await call(client, "startPaymentCapture", {})
        assert not refused, started
        refused, early = await call(client, "completePaymentCapture", {})
        assert refused, early
    for example, live, what in ((successes[0], started, "startPaymentCapture"), (refusals[0], early, "completePaymentCapture")):
        expected, documented = normalized(live), normalized(example)
        differences = sorted(key for key in expected.keys() | documented.keys() if expected.get(key) != documented.get(key))
        assert not differences, (f"the page's {what} example differs from the server's answer in {differences}; "
                                 f"take it from a real run:\n{json.dumps(live, indent=2)}")


async def test_the_page_names_real_tools(served):
    """Every tool name on the page (prose, prompt and code) is one the server lists."""
    async with mcp_client(served.mcp) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
    named = set(TOOL_NAME.findall(page_text()))
    assert named, "the page names no tool"
    assert named <= listed, f"the page names tools the server does not have: {sorted(named - listed)}"
