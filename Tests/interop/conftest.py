"""Shared helpers for the interop tests: where the built binaries are, a raw line-level
client for wire probes, and the MCP JSON schemas for validating what the server sends."""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
# The MCP JSON schemas, kept in the repository (see its SOURCE.md for where they come from).
SPEC = ROOT / "Tests" / "Fixtures" / "reference" / "mcp-schema"


def bin_path() -> Path:
    override = os.environ.get("AGENT_PAYMENTS_BIN")
    if override:
        return Path(override)
    out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


BIN = bin_path()
FIXTURE = BIN / "mcpcore-fixture-server"


@pytest.fixture
def anyio_backend():
    return "asyncio"


class SchemaBook:
    """Validates a message against a named definition of one revision's JSON schema."""

    def __init__(self, version: str):
        path = SPEC / version / "schema.json"
        if not path.is_file():
            pytest.fail(f"MCP schema fixture {path} is missing; it belongs in the repository (Tests/Fixtures/reference/)")
        self.schema = json.loads(path.read_text())
        resource = Resource.from_contents(self.schema)
        self.registry = Registry().with_resource("urn:mcp", resource)

    def errors(self, definition: str, instance) -> list[str]:
        validator = Draft202012Validator({"$ref": f"urn:mcp#/$defs/{definition}"}, registry=self.registry)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]

    def check(self, definition: str, instance) -> None:
        assert definition in self.schema["$defs"], f"the schema defines no {definition}"
        problems = self.errors(definition, instance)
        assert not problems, f"{definition} violations: {problems}\nmessage: {json.dumps(instance)[:2000]}"

    def check_result(self, definition: str, message: dict, envelope: str = "JSONRPCResultResponse") -> None:
        """A successful reply: the whole message against `envelope` (the 2026-07-28 schema also
        has a per-method one, e.g. CallToolResultResponse) and its result against `definition`."""
        assert "result" in message, f"expected a {definition}, got {json.dumps(message)[:2000]}"
        self.check("JSONRPCResultResponse", message)
        if envelope != "JSONRPCResultResponse":
            self.check(envelope, message)
        self.check(definition, message["result"])

    def check_error(self, message: dict, definition: str = "Error") -> None:
        """An error reply: the message as a JSONRPCErrorResponse, its error against `definition`
        (the 2026-07-28 schema names one per code, e.g. MethodNotFoundError)."""
        assert "error" in message, f"expected an error response, got {json.dumps(message)[:2000]}"
        self.check("JSONRPCErrorResponse", message)
        self.check(definition, message["error"])

    def notification_definition(self, method: str) -> str:
        """The definition, among the schema's ServerNotification members, whose method is `method`."""
        for member in self.schema["$defs"]["ServerNotification"]["anyOf"]:
            name = member["$ref"].rsplit("/", 1)[1]
            if self.schema["$defs"][name]["properties"]["method"].get("const") == method:
                return name
        raise AssertionError(f"the schema defines no server notification {method!r}")

    def check_notification(self, message: dict) -> str:
        definition = self.notification_definition(message["method"])
        self.check("JSONRPCNotification", message)
        self.check(definition, message)
        return definition


@pytest.fixture(scope="session")
def legacy_schema() -> SchemaBook:
    return SchemaBook("2025-11-25")


@pytest.fixture(scope="session")
def modern_schema() -> SchemaBook:
    return SchemaBook("2026-07-28")


class WireClient:
    """Speaks raw newline-delimited JSON-RPC to a server process."""

    def __init__(self, *args: str, binary: Path = FIXTURE, env: dict | None = None):
        # stderr goes to a file: a pipe nobody reads could fill and stall the server.
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(binary), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            env=None if env is None else {**os.environ, **env},
        )
        self.buffer = b""
        # Every byte read from stdout, in order: what a test of the whole stream checks.
        self.transcript = b""

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: dict) -> None:
        self.send_raw(json.dumps(message).encode() + b"\n")

    def read(self, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message from the server")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise EOFError("server closed stdout")
                self.buffer += chunk
                self.transcript += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def read_until_response(self, id, timeout: float = 10.0) -> tuple[list[dict], dict]:
        """Reads until the response to request `id`; returns every message read before it and the
        response. The server writes one ordered stream, so whatever it sent before that response
        is in the list: a positive marker instead of waiting for silence."""
        before: list[dict] = []
        while True:
            message = self.read(timeout=timeout)
            if message.get("id") == id and ("result" in message or "error" in message):
                return before, message
            before.append(message)

    def request(self, id, method: str, params: dict | None = None) -> dict:
        message = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.read()

    def initialize(self, version: str = "2025-11-25") -> dict:
        reply = self.request(0, "initialize", {
            "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "wire", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return reply

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def close(self) -> int:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "wire", "version": "1"},
}


def modern(params: dict | None = None, **meta) -> dict:
    params = dict(params or {})
    params["_meta"] = {**MODERN_META, **meta}
    return params


@pytest.fixture
def wire():
    clients: list[WireClient] = []

    def make(*args: str, binary: Path = FIXTURE, env: dict | None = None) -> WireClient:
        client = WireClient(*args, binary=binary, env=env)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
        client.stderr.close()


def pytest_sessionfinish(session, exitstatus):
    """With AGENT_PAYMENTS_NO_SKIPS=1 (scripts/test, so CI), a skipped test fails the run: every
    test here can run on a machine the project's scripts set up, so a skip is something missing."""
    if os.environ.get("AGENT_PAYMENTS_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        names = ", ".join(report.nodeid for report in skipped[:10])
        reporter.write_line(f"AGENT_PAYMENTS_NO_SKIPS=1: {len(skipped)} test(s) skipped, which must run here: {names}",
                            red=True)
        session.exitstatus = 1
