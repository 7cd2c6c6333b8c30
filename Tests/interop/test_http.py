"""MCP over Streamable HTTP (Docs/http.md): the real agent-payments binary with `--http`, in
--simulate mode. The official MCP Python SDK (mcp 2.3.0) drives whole payments over it in both
eras; raw HTTP probes check every status code, header and error body the contract names, each
JSON-RPC body validated against the MCP schema of its revision; static bearer tokens and OAuth
access tokens from a local issuer (its JWKS served from this process) are accepted or refused;
the callback routes and /healthz live on the same listener without a token; SIGTERM ends open
streams, listen streams with their result."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode, urlsplit

import anyio
import httpx2
import jwt
import mcp_types as types
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning

from conftest import BIN, MODERN_META, SchemaBook
from test_agent_payments_e2e import call, new_call, settle

pytestmark = pytest.mark.anyio
warnings.filterwarnings("ignore", category=DeprecationWarning)

SERVER = BIN / "agent-payments"
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
AUDIENCE = "https://mcp.test.example/mcp"
CARD = "4000056655665556"  # distinctive, so a leak into the server's log would be found by a plain search
STARTUP_SECONDS = 20
STOP_SECONDS = 15
TIMEOUT = httpx2.Timeout(10.0)  # every raw request and every read of a stream is bounded by this
MIB = 1 << 20
# What a token needs to take payments: the admission scope the tests configure (`payments`) and
# the scopes the payment tools ask for (Docs/http.md, Scopes).
PAYMENT_SCOPES = "payments payments:read payments:capture payments:charge"
ENDPOINT = re.compile(r"MCP endpoint (http://\S+/mcp)")


# ---------------------------------------------------------------------------------------------
# The server process


def clean_env() -> dict:
    """The test runner's environment without anything that configures agent-payments, Twilio or
    the callbacks, so a developer's shell cannot change what a test sees."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_PAYMENTS_", "CALLBACK_", "TWILIO_", "NGROK_"))}


class RunningServer:
    """One agent-payments process in HTTP mode. Its standard error is read line by line on a
    thread (kept for assertions and failure messages), its standard output on another (it must
    stay empty)."""

    def __init__(self, argv: list[str], env: dict):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.lines: list[str] = []
        self.stderr_done = False
        self.changed = threading.Condition()
        self.stdout_data = b""
        self.readers = [threading.Thread(target=self._read_stderr, daemon=True), threading.Thread(target=self._read_stdout, daemon=True)]
        for reader in self.readers:
            reader.start()
        self.announced = self.mcp = self.base = self.host = None
        self.port = 0

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self.changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\r\n"))
                self.changed.notify_all()
        with self.changed:
            self.stderr_done = True
            self.changed.notify_all()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self.stdout_data = self.proc.stdout.read()

    def stderr_text(self) -> str:
        return "\n".join(list(self.lines))

    def wait_for_line(self, pattern: re.Pattern, timeout: float) -> re.Match:
        """The first standard-error line matching `pattern`, waiting at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.changed:
            while True:
                for line in self.lines[seen:]:
                    found = pattern.search(line)
                    if found:
                        return found
                seen = len(self.lines)
                if self.stderr_done:
                    raise AssertionError(f"the server's standard error ended (exit status {self.proc.poll()}) without "
                                         f"{pattern.pattern!r}:\n{self.stderr_text()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {pattern.pattern!r} on standard error within {timeout} s:\n{self.stderr_text()}")
                self.changed.wait(remaining)

    def await_endpoint(self) -> None:
        self.announced = self.wait_for_line(ENDPOINT, STARTUP_SECONDS).group(1)
        parts = urlsplit(self.announced)
        assert parts.port, self.announced
        self.port = parts.port
        # A wildcard bind is announced as such; connect to it over loopback.
        self.host = "127.0.0.1" if parts.hostname in ("0.0.0.0", "::") else parts.hostname
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.base = f"http://{netloc}:{self.port}"
        self.mcp = self.base + "/mcp"

    def wait(self, timeout: float = STOP_SECONDS) -> int:
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise AssertionError(f"the server did not exit within {timeout} s:\n{self.stderr_text()}") from None
        for reader in self.readers:
            reader.join(timeout=5)
        return status

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait()

    def abort(self) -> None:
        """After a failure: stop it whatever it takes, and show what it said."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for reader in self.readers:
            reader.join(timeout=5)
        sys.stderr.write(f"--- agent-payments {' '.join(self.argv[1:])} (exit {self.proc.returncode}) stderr:\n{self.stderr_text()}\n")


@contextmanager
def http_server(env_extra: dict | None = None, args: tuple = (), scripts: dict | None = None, listen: str = "127.0.0.1:0"):
    """agent-payments --simulate --http LISTEN, up once it announces its endpoint; stopped with
    SIGTERM at the end, which must end it with status 0 and nothing ever written to stdout."""
    env = clean_env()
    env.update({"AGENT_PAYMENTS_SIMULATOR_PACING_MS": "0", "AGENT_PAYMENTS_LOG_LEVEL": "debug"})
    env.update(env_extra or {})
    script_path = None
    if scripts:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as script_file:
            json.dump(scripts, script_file)
        script_path = script_file.name
        env["AGENT_PAYMENTS_SIMULATOR_SCRIPT"] = script_path
    server = RunningServer([str(SERVER), "--simulate", "--http", listen, *args], env)
    try:
        try:
            server.await_endpoint()
            yield server
        except BaseException:
            server.abort()
            raise
        status = server.stop()
        assert status == 0, f"exit status {status} after SIGTERM:\n{server.stderr_text()}"
        assert server.stdout_data == b"", f"standard output must stay silent in HTTP mode, got {server.stdout_data[:2000]!r}"
    finally:
        if script_path:
            os.unlink(script_path)


# ---------------------------------------------------------------------------------------------
# Raw HTTP


def media_type(response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def describe(response) -> str:
    return f"HTTP {response.status_code} {dict(response.headers)}\n{response.text[:2000]}"


def streamed(response) -> str:
    """describe() for a response that is being streamed (read it first: only on a failure)."""
    response.read()
    return describe(response)


def modern_request(method: str, params: dict | None = None, id=1, version: str = MODERN, notification: bool = False) -> dict:
    params = dict(params or {})
    params["_meta"] = {**MODERN_META, VERSION_KEY: version}
    message = {"jsonrpc": "2.0", "method": method, "params": params}
    if not notification:
        message["id"] = id
    return message


def modern_headers(body: dict, token: str | None = None, extra: dict | None = None, drop: tuple = ()) -> dict:
    """The headers a 2026-07-28 client sends with `body`: MCP-Protocol-Version, Mcp-Method and,
    where the method has one, Mcp-Name; `extra` overrides, `drop` removes (names as written here)."""
    params = body.get("params", {})
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": params.get("_meta", {}).get(VERSION_KEY, MODERN), "Mcp-Method": body["method"]}
    if body["method"] in ("tools/call", "prompts/get"):
        headers["Mcp-Name"] = params["name"]
    elif body["method"] == "resources/read":
        headers["Mcp-Name"] = params["uri"]
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    for name in drop:
        headers.pop(name, None)
    return headers


def post(server: RunningServer, body, headers: dict, path: str = "/mcp"):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.post(server.base + path, content=content, headers=headers, timeout=TIMEOUT)


def mpost(server: RunningServer, method: str, params: dict | None = None, id=1, token: str | None = None,
          extra: dict | None = None, drop: tuple = (), version: str = MODERN):
    body = modern_request(method, params, id=id, version=version)
    return post(server, body, modern_headers(body, token=token, extra=extra, drop=drop))


def discover(server: RunningServer, token: str | None = None, extra: dict | None = None):
    return mpost(server, "server/discover", token=token, extra=extra)


class SSEStream:
    """A tiny text/event-stream reader: `field: value` lines, a blank line ends an event, lines
    starting with ':' are comments. Bounded: past `seconds` it fails instead of reading on (each
    single read is bounded by the HTTP client's read timeout)."""

    def __init__(self, response, seconds: float = 30.0):
        self.response = response
        self.lines = response.iter_lines()
        self.deadline = time.monotonic() + seconds
        self.comments: list[str] = []
        self.ids: list[str] = []

    def item(self):
        """("comment", text), ("event", {"event", "data"}), or None when the stream has ended."""
        event, data = None, []
        for line in self.lines:
            if time.monotonic() > self.deadline:
                raise AssertionError("the event stream went on past its deadline")
            if line == "":
                if data or event is not None:
                    return "event", {"event": event or "message", "data": "\n".join(data)}
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                return "comment", line[1:].strip()
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id":
                self.ids.append(value)
        return None

    def message(self) -> dict | None:
        """The next JSON-RPC message (comments skipped), or None when the stream has ended."""
        while True:
            item = self.item()
            if item is None:
                return None
            kind, value = item
            if kind == "event":
                assert value["event"] == "message", f"every event is `event: message`: {value}"
                assert not self.ids, f"events carry no ids (streams are not resumable): {self.ids}"
                return json.loads(value["data"])

    def until(self, predicate) -> dict:
        while True:
            message = self.message()
            assert message is not None, "the stream ended before the expected message"
            if predicate(message):
                return message

    def rest(self) -> list[dict]:
        """Every message until the stream ends."""
        messages = []
        while (message := self.message()) is not None:
            messages.append(message)
        return messages


def reply_of(response) -> tuple[list[dict], dict]:
    """A request's answer, JSON or an event stream (notifications first, then the response)."""
    kind = media_type(response)
    if kind == "application/json":
        return [], response.json()
    assert kind == "text/event-stream", describe(response)
    messages = SSEStream(response).rest()
    assert messages and ("result" in messages[-1] or "error" in messages[-1]), messages
    return messages[:-1], messages[-1]


def error_reply(response, status: int, book: SchemaBook, *, code: int | None = None, error_def: str = "Error",
                message_def: str | None = None, id=...) -> dict:
    """An error on /mcp: the status, and a JSON-RPC error body (content type application/json)
    valid against `book`. `error_def` names a definition of the error object (MethodNotFoundError),
    `message_def` one of the whole message (HeaderMismatchError). The id must be present: the
    request's when it is known, else null (`id=...` accepts either)."""
    assert response.status_code == status, f"expected {status}: {describe(response)}"
    assert media_type(response) == "application/json", f"an error on /mcp has a JSON-RPC body: {describe(response)}"
    message = response.json()
    assert "id" in message, f"a JSON-RPC error response carries an id (null when unknown): {message}"
    if id is not ...:
        assert message["id"] == id, message
    # The schemas type RequestId as string or integer and leave it optional; JSON-RPC 2.0 says null
    # when no request id is known. So a null id is checked as above and the rest against the schema.
    checked = {k: v for k, v in message.items() if not (k == "id" and v is None)}
    book.check_error(checked, error_def)
    if message_def:
        book.check(message_def, checked)
    if code is not None:
        assert message["error"]["code"] == code, message
    return message["error"]


def raw_exchange(server: RunningServer, head: bytes, body: bytes) -> tuple[int, dict, bytes]:
    """Sends one request over a plain socket, the body from a thread so that a server that answers
    (413) and closes before reading all of it is still heard; returns status, headers and body."""
    sock = socket.create_connection((server.host, server.port), timeout=10)

    def send():
        try:
            sock.sendall(head + body)
        except OSError:
            pass  # the server stopped reading; its answer is what counts

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        headers = {k.lower(): v for k, v in response.getheaders()}
        try:
            data = response.read()
        except (http.client.IncompleteRead, ConnectionResetError) as error:
            data = getattr(error, "partial", b"")
        return response.status, headers, data
    finally:
        sock.close()
        sender.join(timeout=10)


@contextmanager
def stream(server: RunningServer, method: str, headers: dict, body=None):
    """An HTTP exchange whose response is read as it arrives (listen streams, the legacy GET)."""
    content = None if body is None else json.dumps(body).encode()
    with httpx2.Client(timeout=TIMEOUT) as client:
        with client.stream(method, server.mcp, headers=headers, content=content) as response:
            yield response


def listen_request(id, notifications: dict | None = None) -> dict:
    return modern_request("subscriptions/listen", {"notifications": notifications or {"resourcesListChanged": True}}, id=id)


@contextmanager
def listening(server: RunningServer, book: SchemaBook, id="listen", token: str | None = None, notifications: dict | None = None):
    """An open subscriptions/listen stream, acknowledged; yields (response, reader, ack)."""
    body = listen_request(id, notifications)
    with stream(server, "POST", modern_headers(body, token=token), body) as response:
        if response.status_code != 200:
            response.read()
        assert response.status_code == 200, describe(response)
        check_sse_headers(response)
        reader = SSEStream(response)
        ack = reader.message()
        assert ack is not None, "the listen stream ended before its acknowledgment"
        assert ack.get("method") == "notifications/subscriptions/acknowledged", f"the first event is the acknowledgment: {ack}"
        book.check_notification(ack)
        assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == id, ack
        yield response, reader, ack


def check_sse_headers(response) -> None:
    assert media_type(response) == "text/event-stream", describe(response)
    assert response.headers.get("x-accel-buffering") == "no", dict(response.headers)
    assert "no-cache" in response.headers.get("cache-control", ""), dict(response.headers)


def modern_tool(server: RunningServer, book: SchemaBook, name: str, arguments: dict, token: str | None = None) -> dict:
    response = mpost(server, "tools/call", {"name": name, "arguments": arguments}, token=token)
    assert response.status_code == 200, describe(response)
    _, reply = reply_of(response)
    book.check_result("CallToolResult", reply, "CallToolResultResponse")
    return reply["result"]


def legacy_headers(session: str | None = None, version: str | None = LEGACY, token: str | None = None, extra: dict | None = None) -> dict:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if session:
        headers["Mcp-Session-Id"] = session
    if version:
        headers["MCP-Protocol-Version"] = version
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    return headers


def legacy_request(method: str, params: dict | None = None, id=1) -> dict:
    message = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def legacy_session(server: RunningServer, book: SchemaBook, token: str | None = None) -> str:
    """initialize (no session id, no version header, as the SDK sends it), then initialized."""
    response = post(server, legacy_request("initialize", {
        "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "raw-http", "version": "1"}}, id=0),
        legacy_headers(version=None, token=token))
    assert response.status_code == 200, describe(response)
    session = response.headers.get("mcp-session-id")
    assert session and re.fullmatch(r"[0-9a-fA-F]{64}", session), f"Mcp-Session-Id is 32 random bytes in hex: {session!r}"
    _, reply = reply_of(response)
    book.check_result("InitializeResult", reply)
    assert reply["id"] == 0 and reply["result"]["protocolVersion"] == LEGACY, reply
    response = post(server, {"jsonrpc": "2.0", "method": "notifications/initialized"}, legacy_headers(session, token=token))
    assert response.status_code == 202 and response.content == b"", describe(response)
    return session


def legacy_call(server: RunningServer, book: SchemaBook, session: str, method: str, params: dict | None = None,
                definition: str = "Result", id=1) -> dict:
    response = post(server, legacy_request(method, params, id=id), legacy_headers(session))
    assert response.status_code == 200, describe(response)
    _, reply = reply_of(response)
    assert reply.get("id") == id, reply
    book.check_result(definition, reply)
    return reply["result"]


def eventually_opened(server: RunningServer, method: str, headers: dict, body=None, refused: int = 409, seconds: float = 10):
    """Opens a stream whose slot a just-closed one frees; the server may notice that close a moment
    later, so while it still answers `refused` this retries, within a deadline."""
    deadline = time.monotonic() + seconds
    while True:
        manager = stream(server, method, headers, body)
        response = manager.__enter__()
        if response.status_code != refused:
            return manager, response
        response.read()
        manager.__exit__(None, None, None)
        if time.monotonic() > deadline:
            raise AssertionError(f"still {refused} {seconds} s after the other stream was closed")
        time.sleep(0.05)  # polling a condition with a deadline, not ordering


# ---------------------------------------------------------------------------------------------
# A local OAuth issuer: discovery metadata and a JWKS, served from this process


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(private_key, kid: str, alg: str) -> dict:
    algorithm = RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk = algorithm.to_jwk(private_key.public_key(), as_dict=True)
    jwk.pop("key_ops", None)
    jwk.update(kid=kid, alg=alg, use="sig")
    return jwk


class Issuer:
    """An authorization server as far as a resource server sees it: metadata at
    /.well-known/oauth-authorization-server (or only openid-configuration, or none) naming
    /jwks.json, which holds an RSA 2048 key (kid rsa-1, RS256) and an EC P-256 key (kid ec-1,
    ES256). Tokens are minted here with PyJWT; keys can be added while the server runs."""

    def __init__(self, metadata: tuple = ("oauth-authorization-server",), audience: str = AUDIENCE):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.audience = audience
        self.metadata = metadata
        self.lock = threading.Lock()
        self.keys: dict[str, dict] = {}
        self.hits: list[str] = []
        self.add_key("rsa-1", self.rsa, "RS256")
        self.add_key("ec-1", self.ec, "ES256")
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?", 1)[0]
                with issuer.lock:
                    issuer.hits.append(path)
                document = issuer.document(path)
                if document is None:
                    self.send_error(404)
                    return
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.jwks_url = self.url + "/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def document(self, path: str) -> dict | None:
        if path == "/jwks.json":
            with self.lock:
                return {"keys": list(self.keys.values())}
        if path in {f"/.well-known/{name}" for name in self.metadata}:
            return {"issuer": self.url, "jwks_uri": self.jwks_url, "authorization_endpoint": self.url + "/authorize",
                    "token_endpoint": self.url + "/token", "response_types_supported": ["code"]}
        return None

    def add_key(self, kid: str, private_key, alg: str) -> None:
        with self.lock:
            self.keys[kid] = public_jwk(private_key, kid, alg)

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        claims = {"iss": self.url, "aud": self.audience, "sub": "voice-agent-1", "iat": now, "nbf": now, "exp": now + 300,
                  "scope": PAYMENT_SCOPES, "jti": secrets.token_hex(8)}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key=None, kid: str = "rsa-1", alg: str = "RS256", **overrides) -> str:
        if key is None:
            key = self.ec if alg.startswith("ES") else self.rsa
        return jwt.encode(self.claims(**overrides), key, algorithm=alg, headers={"kid": kid})

    def forged(self, header: dict, signature: bytes | None = None, signing_key: bytes | None = None, **overrides) -> str:
        """A token put together by hand: unsigned (alg none), or HMAC-signed with `signing_key`."""
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(self.claims(**overrides)).encode())
        if signing_key is not None:
            signature = hmac.new(signing_key, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + b64url(signature or b"")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@contextmanager
def issuer_running(**kwargs):
    issuer = Issuer(**kwargs)
    try:
        yield issuer
    finally:
        issuer.close()


def oauth_env(issuer: Issuer, audience: str | None = AUDIENCE, scope: str | None = "payments", **extra) -> dict:
    env = {"AGENT_PAYMENTS_OAUTH_ISSUER": issuer.url, **extra}
    if audience is not None:
        env["AGENT_PAYMENTS_OAUTH_AUDIENCE"] = audience
    if scope is not None:
        env["AGENT_PAYMENTS_OAUTH_SCOPE"] = scope
    return env


def challenge(response) -> str:
    value = response.headers.get("www-authenticate", "")
    assert value.startswith("Bearer"), f"WWW-Authenticate is a Bearer challenge: {describe(response)}"
    return value


# ---------------------------------------------------------------------------------------------
# 1. Whole payments through the official SDK client


async def sdk_payment(server: RunningServer, mode: str, call_sid: str, token: str | None = None) -> dict:
    """One simulated payment, start to completion, through `Client` over Streamable HTTP, with the
    status resource watched: resources/subscribe and the session's GET stream (legacy), or a
    subscriptions/listen stream (2026-07-28). Returns the final status."""
    watched: dict[str, str] = {}
    updates: list[str] = []
    enough = anyio.Event()

    async def on_message(message):
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))
            if "uri" in watched and updates.count(watched["uri"]) >= 5:
                enough.set()

    async def five_updates():
        try:
            with anyio.fail_after(15):
                await enough.wait()
        except TimeoutError:
            raise AssertionError(f"only {updates.count(watched['uri'])} updates for {watched['uri']}: {updates}") from None

    http_kwargs = {"timeout": httpx2.Timeout(30.0, read=60.0)}  # the SDK's defaults, with a shorter read bound
    if token is not None:
        http_kwargs["headers"] = {"Authorization": f"Bearer {token}"}
    tools: list[str] = []
    with anyio.fail_after(120):
        async with httpx2.AsyncClient(**http_kwargs) as http:
            client = Client(streamable_http_client(server.mcp, http_client=http), mode=mode, message_handler=on_message,
                            read_timeout_seconds=30)
            async with client:
                if mode == "legacy":
                    assert client.protocol_version.startswith("2025-"), client.protocol_version
                else:
                    assert client.protocol_version == MODERN, client.protocol_version
                if mode != MODERN:  # a pinned version adopts without server/discover, so without serverInfo
                    assert client.server_info is not None and client.server_info.name == "agent-payments"
                status = await call(client, "startPaymentCapture", callSid=call_sid)
                watched["uri"] = uri = f"payment://{call_sid}/{status['paymentSid']}/status"

                async def follow(status):
                    for _ in range(20):
                        tool = status["nextStep"].get("tool")
                        if tool is None or not (tool.startswith("capture") or tool == "completePaymentCapture"):
                            return status
                        tools.append(tool)
                        status = await settle(client, await call(client, tool, callSid=call_sid, paymentSid=status["paymentSid"]))
                    raise AssertionError(f"too many steps: {status}")

                if mode == "legacy":
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", MCPDeprecationWarning)  # the legacy era's way, on purpose
                        await client.subscribe_resource(uri)
                    status = await follow(status)
                    await five_updates()
                else:
                    async with client.listen(resource_subscriptions=[uri]):
                        status = await follow(status)
                        await five_updates()
                body = json.loads((await client.read_resource(uri)).contents[0].text)
    assert {"captureCardNumber", "captureExpirationDate", "captureSecurityCode", "completePaymentCapture"} <= set(tools), tools
    assert status["phase"] == "completed" and status["result"] == "success", status
    assert status["paymentToken"].startswith("tok_sim_"), status
    assert status["paymentCardNumber"] == "xxxxxxxxxxxx" + CARD[-4:] and status["callSid"] == call_sid, status
    assert body["phase"] == "completed" and body["paymentToken"] == status["paymentToken"], body
    assert CARD not in server.stderr_text() and CARD[4:12] not in server.stderr_text(), "the card number never reaches the log"
    return status


@pytest.mark.parametrize("mode,auth", [("legacy", None), ("auto", None), (MODERN, None), ("legacy", "token"), (MODERN, "token")])
async def test_a_whole_payment_through_the_sdk_over_http(mode, auth):
    token = secrets.token_hex(32) if auth else None
    env = {"AGENT_PAYMENTS_HTTP_TOKENS": token} if token else {}
    call_sid = new_call()
    with http_server(env, scripts={call_sid: {"payment-card-number": [CARD]}}) as server:
        await sdk_payment(server, mode, call_sid, token=token)
        if token:
            assert token not in server.stderr_text(), "tokens never appear in logs"


async def test_a_whole_payment_with_an_oauth_access_token():
    with issuer_running() as issuer:
        call_sid = new_call()
        with http_server(oauth_env(issuer), scripts={call_sid: {"payment-card-number": [CARD]}}) as server:
            token = issuer.token()
            await sdk_payment(server, MODERN, call_sid, token=token)
            assert token not in server.stderr_text(), "tokens never appear in logs"


# ---------------------------------------------------------------------------------------------
# 2. Raw HTTP: the modern era


def test_requests_run_on_nio_event_loops():
    """With --http the executable makes NIO's event loops Swift's global executor (Entry.swift): a
    statically linked runtime hides the hook NIO looks up unless Package.swift exports it, and then
    every request would hop to Swift's pool and back. The transport's service says where it runs."""
    with http_server() as server:
        deadline = time.monotonic() + 10
        while "tasks run on" not in server.stderr_text():
            assert time.monotonic() < deadline, server.stderr_text()[-2000:]
            time.sleep(0.05)
        assert "MCP over HTTP: tasks run on NIO's event loops" in server.stderr_text(), server.stderr_text()[-2000:]


def test_modern_requests_answers_and_statuses(modern_schema):
    with http_server() as server:
        response = discover(server)
        assert response.status_code == 200 and media_type(response) == "application/json", describe(response)
        reply = response.json()
        modern_schema.check_result("DiscoverResult", reply, "DiscoverResultResponse")
        assert reply["id"] == 1 and MODERN in reply["result"]["supportedVersions"], reply
        assert reply["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "agent-payments"
        assert "mcp-session-id" not in response.headers, "the modern era mints no sessions"

        # A session id on a modern POST is ignored (no 404 for an unknown one).
        response = discover(server, extra={"Mcp-Session-Id": secrets.token_hex(32)})
        assert response.status_code == 200, describe(response)
        modern_schema.check_result("DiscoverResult", response.json(), "DiscoverResultResponse")

        # A content type with parameters is still application/json.
        body = modern_request("tools/list", id="list")
        response = post(server, body, modern_headers(body, extra={"Content-Type": "application/json; charset=utf-8"}))
        assert response.status_code == 200, describe(response)
        modern_schema.check_result("ListToolsResult", response.json(), "ListToolsResultResponse")
        assert response.json()["id"] == "list"
        assert "getPaymentStatus" in {tool["name"] for tool in response.json()["result"]["tools"]}

        # A tool's refusal is a result, with 200.
        result = modern_tool(server, modern_schema, "getPaymentStatus", {"paymentSid": "PK" + secrets.token_hex(16)})
        assert result.get("isError") is True, result

        # An unknown method: 404, -32601.
        response = mpost(server, "payments/teleport", {}, id=7)
        error_reply(response, 404, modern_schema, code=-32601, error_def="MethodNotFoundError", id=7)

        # initialize on a 2026-07-28 POST is not a handshake: no session, 400 with the supported versions.
        response = mpost(server, "initialize", {"protocolVersion": MODERN, "capabilities": {},
                                                "clientInfo": {"name": "raw-http", "version": "1"}}, id=8)
        reply = error_reply(response, 400, modern_schema, code=-32022, id=8)
        assert MODERN in reply["data"]["supported"], reply
        assert "mcp-session-id" not in response.headers, response.headers

        # A version the server does not speak: 400, -32022, naming what it does.
        response = mpost(server, "server/discover", id=8, version="2099-01-01")
        error = error_reply(response, 400, modern_schema, code=-32022, message_def="UnsupportedProtocolVersionError", id=8)
        assert isinstance(error["data"]["supported"], list) and MODERN in error["data"]["supported"], error
        assert error["data"]["requested"] == "2099-01-01", error

        # A notification: 202, no body.
        body = modern_request("notifications/cancelled", {"requestId": 99, "reason": "test"}, notification=True)
        response = post(server, body, modern_headers(body))
        assert response.status_code == 202 and response.content == b"", describe(response)


def test_modern_headers_are_checked_against_the_body(modern_schema):
    def mismatch(response, id=1):
        return error_reply(response, 400, modern_schema, code=-32020, message_def="HeaderMismatchError", id=id)

    name_call = {"name": "getPaymentStatus", "arguments": {"paymentSid": "PK" + "0" * 32}}
    with http_server() as server:
        # Mcp-Method differs from the body's method.
        mismatch(mpost(server, "server/discover", extra={"Mcp-Method": "tools/list"}))
        # Mcp-Method missing.
        mismatch(mpost(server, "server/discover", drop=("Mcp-Method",)))
        # MCP-Protocol-Version missing while the body is modern.
        mismatch(mpost(server, "server/discover", drop=("MCP-Protocol-Version",)))
        # MCP-Protocol-Version 2026-07-28, the body's _meta another (spoken) revision.
        body = modern_request("server/discover", version=LEGACY)
        mismatch(post(server, body, modern_headers(body, extra={"MCP-Protocol-Version": MODERN})))
        # Mcp-Name missing on tools/call, or naming another tool.
        mismatch(mpost(server, "tools/call", name_call, drop=("Mcp-Name",)))
        mismatch(mpost(server, "tools/call", name_call, extra={"Mcp-Name": "startPaymentCapture"}))
        # The Base64 sentinel is decoded before the comparison: accepted when it encodes the name...
        sentinel = "=?base64?" + base64.b64encode(b"getPaymentStatus").decode() + "?="
        response = mpost(server, "tools/call", name_call, extra={"Mcp-Name": sentinel})
        assert response.status_code == 200, describe(response)
        modern_schema.check_result("CallToolResult", reply_of(response)[1], "CallToolResultResponse")
        # ...and refused when it encodes another.
        other = "=?base64?" + base64.b64encode(b"startPaymentCapture").decode() + "?="
        mismatch(mpost(server, "tools/call", name_call, extra={"Mcp-Name": other}))
        # A name outside visible ASCII must come as the sentinel; raw UTF-8 bytes are malformed.
        accented = {"name": "caf\u00e9", "arguments": {}}
        mismatch(mpost(server, "tools/call", accented, extra={"Mcp-Name": "caf\u00e9".encode()}))
        response = mpost(server, "tools/call", accented, extra={"Mcp-Name": "=?base64?" + base64.b64encode("caf\u00e9".encode()).decode() + "?="})
        assert response.status_code == 200, f"the sentinel-encoded name matches; the unknown tool is a JSON-RPC answer: {describe(response)}"
        # resources/read: Mcp-Name is params.uri.
        uri = f"payment://{new_call()}/PK{'0' * 32}/status"
        mismatch(mpost(server, "resources/read", {"uri": uri}, extra={"Mcp-Name": uri + "x"}))
        response = mpost(server, "resources/read", {"uri": uri})
        assert response.status_code == 200, f"an unknown resource is a JSON-RPC error with 200: {describe(response)}"


def test_requests_the_endpoint_refuses_before_reading_them(modern_schema):
    with http_server() as server:
        # At most 1 MiB: exactly that is read; one byte more is 413.
        def padded(size: int) -> bytes:
            body = modern_request("tools/list")
            body["params"]["_meta"]["example.com/padding"] = ""
            body["params"]["_meta"]["example.com/padding"] = "x" * (size - len(json.dumps(body).encode()))
            data = json.dumps(body).encode()
            assert len(data) == size
            return data

        headers = modern_headers(modern_request("tools/list"))
        response = post(server, padded(MIB), headers)
        assert response.status_code == 200, f"a body of exactly 1 MiB is accepted: {describe(response)}"
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        big = padded(MIB + 1)
        status, response_headers, data = raw_exchange(
            server, f"POST /mcp HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n{head}Content-Length: {len(big)}\r\n\r\n".encode(), big)
        assert status == 413, (status, response_headers, data[:500])
        assert response_headers.get("content-type", "").startswith("application/json"), (response_headers, data[:500])
        message = json.loads(data)
        assert "id" in message, message
        modern_schema.check_error({k: v for k, v in message.items() if not (k == "id" and v is None)})

        # Not application/json: 415.
        body = modern_request("server/discover")
        error_reply(post(server, body, modern_headers(body, extra={"Content-Type": "text/plain"})), 415, modern_schema)
        # Not JSON: 400, -32700, id null.
        error_reply(post(server, b'{"jsonrpc": "2.0", "id": 1, "method": ', modern_headers(body)), 400, modern_schema,
                    code=-32700, error_def="ParseError", id=None)
        # A batch: 400, -32600.
        error_reply(post(server, json.dumps([body]).encode(), modern_headers(body)), 400, modern_schema, code=-32600,
                    error_def="InvalidRequestError")
        # Methods: GET and DELETE without a session id are 405; others 405 with Allow.
        response = httpx2.get(server.mcp, headers={"Accept": "text/event-stream"}, timeout=TIMEOUT)
        error_reply(response, 405, modern_schema)
        response = httpx2.delete(server.mcp, timeout=TIMEOUT)
        error_reply(response, 405, modern_schema)
        response = httpx2.put(server.mcp, content=json.dumps(body).encode(), headers=modern_headers(body), timeout=TIMEOUT)
        error_reply(response, 405, modern_schema)
        allowed = {method.strip() for method in response.headers.get("allow", "").split(",")}
        assert {"POST", "GET", "DELETE"} <= allowed, dict(response.headers)


def test_a_raw_listen_stream(modern_schema):
    call_sid = new_call()
    with http_server({"AGENT_PAYMENTS_HTTP_KEEPALIVE_SECONDS": "1"}) as server:
        status = modern_tool(server, modern_schema, "startPaymentCapture", {"callSid": call_sid})["structuredContent"]
        uri = f"payment://{call_sid}/{status['paymentSid']}/status"
        with listening(server, modern_schema, id="watch", notifications={"resourceSubscriptions": [uri]}) as (response, reader, ack):
            assert uri in ack["params"]["notifications"].get("resourceSubscriptions", []), ack
            modern_tool(server, modern_schema, "captureCardNumber", {"callSid": call_sid, "paymentSid": status["paymentSid"]})
            update = reader.until(lambda m: m.get("method") == "notifications/resources/updated")
            modern_schema.check_notification(update)
            assert update["params"]["uri"] == uri and update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "watch", update
            # Quiet now or not, a keep-alive comment comes within the interval (1 s here).
            while not reader.comments:
                assert reader.item() is not None, "the stream ended"
            assert reader.comments[0] == "keep-alive", reader.comments
        # Closing it is fine: the server still answers.
        assert discover(server).status_code == 200


# ---------------------------------------------------------------------------------------------
# 2. Raw HTTP: the legacy era


def test_legacy_sessions(legacy_schema):
    with http_server() as server:
        session = legacy_session(server, legacy_schema)
        tools = legacy_call(server, legacy_schema, session, "tools/list", {}, "ListToolsResult")
        assert "startPaymentCapture" in {tool["name"] for tool in tools["tools"]}
        # Without the version header it is read as the negotiated one.
        response = post(server, legacy_request("tools/list", {}, id=2), legacy_headers(session, version=None))
        assert response.status_code == 200, describe(response)
        legacy_schema.check_result("ListToolsResult", reply_of(response)[1])
        # Another (legacy) revision than the negotiated one: 400.
        response = post(server, legacy_request("tools/list", {}, id=3), legacy_headers(session, version="2025-06-18"))
        error_reply(response, 400, legacy_schema)
        # A request of a session without its id: 400 (with or without a version header).
        error_reply(post(server, legacy_request("tools/list", {}), legacy_headers(None)), 400, legacy_schema)
        error_reply(post(server, legacy_request("tools/list", {}), legacy_headers(None, version=None)), 400, legacy_schema)
        # An unknown session: 404.
        error_reply(post(server, legacy_request("tools/list", {}), legacy_headers(secrets.token_hex(32))), 404, legacy_schema)
        # A tool answers in a session like anywhere else.
        result = legacy_call(server, legacy_schema, session, "tools/call",
                             {"name": "getPaymentStatus", "arguments": {"paymentSid": "PK" + "0" * 32}}, "CallToolResult")
        assert result.get("isError") is True, result
        # Each initialize is a session of its own; DELETE ends one (204), after which it is unknown (404).
        other = legacy_session(server, legacy_schema)
        assert other != session
        response = httpx2.delete(server.mcp, headers=legacy_headers(other), timeout=TIMEOUT)
        assert response.status_code == 204, describe(response)
        error_reply(post(server, legacy_request("tools/list", {}), legacy_headers(other)), 404, legacy_schema)
        response = httpx2.delete(server.mcp, headers=legacy_headers(other), timeout=TIMEOUT)
        error_reply(response, 404, legacy_schema)
        # The first session is untouched.
        legacy_call(server, legacy_schema, session, "tools/list", {}, "ListToolsResult", id=9)


def test_the_legacy_get_stream(legacy_schema):
    call_sid = new_call()
    with http_server({"AGENT_PAYMENTS_HTTP_KEEPALIVE_SECONDS": "1"}) as server:
        session = legacy_session(server, legacy_schema)
        get_headers = legacy_headers(session, extra={"Accept": "text/event-stream"})
        # Not accepting text/event-stream: 406. An unknown session: 404.
        response = httpx2.get(server.mcp, headers=legacy_headers(session, extra={"Accept": "application/json"}), timeout=TIMEOUT)
        error_reply(response, 406, legacy_schema)
        response = httpx2.get(server.mcp, headers=legacy_headers(secrets.token_hex(32), extra={"Accept": "text/event-stream"}), timeout=TIMEOUT)
        error_reply(response, 404, legacy_schema)

        # Updates that happen while no stream is open are kept and delivered when one opens.
        status = legacy_call(server, legacy_schema, session, "tools/call",
                             {"name": "startPaymentCapture", "arguments": {"callSid": call_sid}}, "CallToolResult")["structuredContent"]
        uri = f"payment://{call_sid}/{status['paymentSid']}/status"
        legacy_call(server, legacy_schema, session, "resources/subscribe", {"uri": uri}, "EmptyResult", id=2)
        legacy_call(server, legacy_schema, session, "tools/call",
                    {"name": "captureCardNumber", "arguments": {"callSid": call_sid, "paymentSid": status["paymentSid"]}},
                    "CallToolResult", id=3)
        with stream(server, "GET", get_headers) as first:
            assert first.status_code == 200, streamed(first)
            check_sse_headers(first)
            # The reader is kept: dropping it closes its line iterator, and with it the response.
            first_reader = SSEStream(first)
            update = first_reader.until(lambda m: m.get("method") == "notifications/resources/updated")
            legacy_schema.check_notification(update)
            assert update["params"]["uri"] == uri, update
            # One stream at a time per session.
            with stream(server, "GET", get_headers) as second:
                second.read()
                error_reply(second, 409, legacy_schema)
            assert first_reader.item() is not None, "the first stream is still open"
        # Once it is closed, another may open; DELETE then closes that one.
        manager, third = eventually_opened(server, "GET", get_headers)
        try:
            assert third.status_code == 200, streamed(third)
            response = httpx2.delete(server.mcp, headers=legacy_headers(session), timeout=TIMEOUT)
            assert response.status_code == 204, describe(response)
            SSEStream(third, seconds=10).rest()  # ends (bounded) instead of staying open
        finally:
            manager.__exit__(None, None, None)
        error_reply(post(server, legacy_request("tools/list", {}), legacy_headers(session)), 404, legacy_schema)


# ---------------------------------------------------------------------------------------------
# 3. Authorization


def test_static_bearer_tokens(modern_schema):
    token, second = secrets.token_hex(32), secrets.token_hex(32)
    wrong = secrets.token_hex(32)
    with http_server({"AGENT_PAYMENTS_HTTP_TOKENS": f"{token},{second}"}) as server:
        response = discover(server)
        error_reply(response, 401, modern_schema)
        assert 'realm="agent-payments"' in challenge(response), response.headers
        response = discover(server, token=wrong)
        error_reply(response, 401, modern_schema)
        assert 'error="invalid_token"' in challenge(response), response.headers
        response = discover(server, extra={"Authorization": f"Basic {base64.b64encode(b'user:' + token.encode()).decode()}"})
        error_reply(response, 401, modern_schema)
        for good in (token, second):
            response = discover(server, token=good)
            assert response.status_code == 200, describe(response)
            modern_schema.check_result("DiscoverResult", response.json(), "DiscoverResultResponse")
        # The Origin check comes first: a good token from a foreign page is still 403.
        error_reply(discover(server, token=token, extra={"Origin": "https://evil.example"}), 403, modern_schema)
        # No OAuth configured: no protected-resource metadata.
        response = httpx2.get(server.base + "/.well-known/oauth-protected-resource", timeout=TIMEOUT)
        assert response.status_code == 404, describe(response)
        text = server.stderr_text()
        assert token not in text and second not in text and wrong not in text, "tokens never appear in logs"

    # The same from a file: one per line, blank lines and # comments ignored.
    with tempfile.NamedTemporaryFile("w", suffix=".tokens", delete=False) as tokens_file:
        tokens_file.write(f"# tokens for the voice agents\n\n{token}\n")
    try:
        with http_server(args=("--http-tokens-file", tokens_file.name)) as server:
            error_reply(discover(server), 401, modern_schema)
            error_reply(discover(server, token="# tokens for the voice agents"), 401, modern_schema)
            assert discover(server, token=token).status_code == 200
    finally:
        os.unlink(tokens_file.name)


def test_oauth_access_tokens(modern_schema):
    with issuer_running() as issuer, http_server(oauth_env(issuer)) as server:
        def refused(token: str, why: str):
            response = discover(server, token=token)
            assert response.status_code == 401, f"{why}: {describe(response)}"
            error_reply(response, 401, modern_schema)
            assert 'error="invalid_token"' in challenge(response), (why, response.headers)

        # No token: 401 naming the protected-resource metadata, which is served without a token.
        response = discover(server)
        error_reply(response, 401, modern_schema)
        found = re.search(r'resource_metadata="([^"]+)"', challenge(response))
        assert found, response.headers
        assert found.group(1).startswith(server.base + "/.well-known/oauth-protected-resource"), found.group(1)
        for url in (found.group(1), server.base + "/.well-known/oauth-protected-resource/mcp"):
            metadata = httpx2.get(url, timeout=TIMEOUT)
            assert metadata.status_code == 200 and media_type(metadata) == "application/json", describe(metadata)
            assert metadata.json()["resource"] == AUDIENCE and metadata.json()["authorization_servers"] == [issuer.url], metadata.json()

        # Valid: RS256, then a key the issuer adds after the server fetched the JWKS (an unknown
        # kid makes the server fetch it again), then ES256, then more scopes than required.
        response = discover(server, token=issuer.token())
        assert response.status_code == 200, describe(response)
        modern_schema.check_result("DiscoverResult", response.json(), "DiscoverResultResponse")
        rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        issuer.add_key("rsa-2", rotated, "RS256")
        response = discover(server, token=issuer.token(key=rotated, kid="rsa-2"))
        assert response.status_code == 200, f"a key added to the JWKS after start-up: {describe(response)}"
        response = discover(server, token=issuer.token(kid="ec-1", alg="ES256"))
        assert response.status_code == 200, f"ES256: {describe(response)}"
        assert discover(server, token=issuer.token(scope="openid payments offline_access")).status_code == 200

        # Invalid: 401 with error="invalid_token".
        now = int(time.time())
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_pem = issuer.rsa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        refused(issuer.token(aud="https://other.example/mcp"), "wrong audience")
        refused(issuer.token(exp=now - 600, iat=now - 900, nbf=now - 900), "expired")
        refused(issuer.token(nbf=now + 600, iat=now), "not yet valid")
        refused(issuer.token(key=stranger, kid="rsa-1"), "bad signature")
        refused(issuer.token(key=stranger, kid="nope"), "unknown key")
        refused(issuer.token(iss="http://127.0.0.1:1"), "wrong issuer")
        refused(issuer.forged({"alg": "none", "typ": "JWT", "kid": "rsa-1"}), "unsigned (alg none)")
        refused(issuer.forged({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, signing_key=public_pem), "HS256 keyed with the RSA public key")
        refused("not.a.jwt", "garbage")

        # Valid but without the required scope: 403 insufficient_scope, naming it.
        for scope in ("other", None):
            response = discover(server, token=issuer.token(scope=scope))
            error_reply(response, 403, modern_schema)
            value = challenge(response)
            assert 'error="insufficient_scope"' in value and 'scope="payments"' in value, response.headers

        assert "eyJ" not in server.stderr_text(), "tokens never appear in logs"


def test_oauth_default_audience_and_jwks_discovery():
    # Only OpenID discovery, no audience configured: the audience is the announced MCP URL.
    with issuer_running(metadata=("openid-configuration",)) as issuer:
        with http_server(oauth_env(issuer, audience=None, scope=None)) as server:
            issuer.audience = server.announced
            response = discover(server, token=issuer.token())
            assert response.status_code == 200, f"aud = {server.announced}: {describe(response)}"
            assert discover(server, token=issuer.token(aud=AUDIENCE)).status_code == 401
            assert discover(server, token=issuer.token(scope=None)).status_code == 200, "no scope required by default"
            response = httpx2.get(server.base + "/.well-known/oauth-protected-resource", timeout=TIMEOUT)
            assert response.status_code == 200, describe(response)
            metadata = response.json()
            assert metadata["resource"] == server.announced and metadata["authorization_servers"] == [issuer.url], metadata
            assert "/.well-known/openid-configuration" in issuer.hits and "/jwks.json" in issuer.hits, issuer.hits
    # No discovery at all: the JWKS URL given directly.
    with issuer_running(metadata=()) as issuer:
        with http_server(oauth_env(issuer, AGENT_PAYMENTS_OAUTH_JWKS_URL=issuer.jwks_url)) as server:
            response = discover(server, token=issuer.token())
            assert response.status_code == 200, describe(response)


# ---------------------------------------------------------------------------------------------
# 4. Origin


def test_origin_is_checked_first(modern_schema):
    with http_server() as server:
        assert discover(server).status_code == 200, "no Origin: a non-browser client"
        error_reply(discover(server, extra={"Origin": "https://evil.example"}), 403, modern_schema)
        error_reply(discover(server, extra={"Origin": "https://app.example"}), 403, modern_schema)
    with http_server({"AGENT_PAYMENTS_ALLOWED_ORIGINS": "https://app.example"}) as server:
        response = discover(server, extra={"Origin": "https://app.example"})
        assert response.status_code == 200, describe(response)
        for origin in ("https://evil.example", "http://app.example", "https://app.example.evil.example", "null"):
            error_reply(discover(server, extra={"Origin": origin}), 403, modern_schema)
        assert discover(server).status_code == 200


# ---------------------------------------------------------------------------------------------
# 5. A non-loopback address needs authorization


def test_a_public_address_without_authorization_refuses_to_start(modern_schema):
    env = {**clean_env(), "AGENT_PAYMENTS_SIMULATOR_PACING_MS": "0", "AGENT_PAYMENTS_LOG_LEVEL": "debug"}
    try:
        out = subprocess.run([str(SERVER), "--simulate", "--http", "0.0.0.0:0"], env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(f"still running after 10 s: {expired.stderr}") from None
    assert out.returncode != 0, out.stderr
    for name in ("AGENT_PAYMENTS_HTTP_TOKENS", "AGENT_PAYMENTS_OAUTH_ISSUER", "--allow-unauthenticated"):
        assert name in out.stderr, (name, out.stderr)
    assert out.stdout == ""
    with http_server(args=("--allow-unauthenticated",), listen="0.0.0.0:0") as server:
        response = discover(server)
        assert response.status_code == 200, describe(response)
        modern_schema.check_result("DiscoverResult", response.json(), "DiscoverResultResponse")


# ---------------------------------------------------------------------------------------------
# 6. Open streams per token


def test_open_streams_are_bounded_per_token(modern_schema):
    token, other = secrets.token_hex(32), secrets.token_hex(32)
    env = {"AGENT_PAYMENTS_HTTP_TOKENS": f"{token},{other}", "AGENT_PAYMENTS_HTTP_MAX_STREAMS": "2",
           "AGENT_PAYMENTS_HTTP_KEEPALIVE_SECONDS": "1"}
    with http_server(env) as server, ExitStack() as streams:
        streams.enter_context(listening(server, modern_schema, id="one", token=token))
        second = ExitStack()
        second.enter_context(listening(server, modern_schema, id="two", token=token))
        try:
            body = listen_request("three")
            with stream(server, "POST", modern_headers(body, token=token), body) as third:
                third.read()
                error_reply(third, 429, modern_schema)
            # Another token has its own allowance.
            with listening(server, modern_schema, id="elsewhere", token=other):
                pass
        finally:
            second.close()
        # The closed stream's slot is free again (once the server has noticed the close).
        manager, fourth = eventually_opened(server, "POST", modern_headers(body, token=token), body, refused=429)
        try:
            assert fourth.status_code == 200, streamed(fourth)
            fourth_reader = SSEStream(fourth)  # kept: dropping it would close the response
            ack = fourth_reader.message()
            assert ack and ack["method"] == "notifications/subscriptions/acknowledged", ack
        finally:
            manager.__exit__(None, None, None)


# ---------------------------------------------------------------------------------------------
# 7. Callbacks and the health probes on the same listener, without a token


def test_callbacks_and_health_need_no_bearer_token(modern_schema):
    token = secrets.token_hex(32)
    with http_server({"AGENT_PAYMENTS_HTTP_TOKENS": token}) as server:
        error_reply(discover(server), 401, modern_schema)  # the tokens are on
        form = urlencode({"Sid": "PK" + "0" * 32, "Result": "success", "PaymentToken": "forged"}).encode()
        for signature in (None, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="):
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            if signature:
                headers["X-Twilio-Signature"] = signature
            response = httpx2.post(f"{server.base}/twilio/payment-callbacks/{secrets.token_hex(16)}", content=form,
                                   headers=headers, timeout=TIMEOUT)
            assert response.status_code in (403, 404), f"a callback is judged by signature and secret, never a bearer token: {describe(response)}"
        for path in ("/healthz", "/livez"):
            response = httpx2.get(server.base + path, timeout=TIMEOUT)
            assert response.status_code == 200 and response.text.strip() == "ok", describe(response)
        response = httpx2.get(server.base + "/readyz", timeout=TIMEOUT)
        assert response.status_code == 200, describe(response)
        assert response.headers["content-type"] == "application/json", describe(response)
        assert response.json() == {"ready": True, "checks": {"started": "ok", "publicURL": "ok", "twilio": "ok",
                                                             "store": "ok"}}, describe(response)


# ---------------------------------------------------------------------------------------------
# 8. SIGTERM


def test_sigterm_ends_open_streams_listen_streams_with_their_result(modern_schema, legacy_schema):
    with http_server() as server, ExitStack() as open_streams:
        _, listen_reader, _ = open_streams.enter_context(listening(server, modern_schema, id="bye"))
        session = legacy_session(server, legacy_schema)
        legacy_get = open_streams.enter_context(stream(server, "GET", legacy_headers(session, extra={"Accept": "text/event-stream"})))
        assert legacy_get.status_code == 200, streamed(legacy_get)
        server.proc.send_signal(signal.SIGTERM)
        listen_reader.deadline = time.monotonic() + STOP_SECONDS
        rest = listen_reader.rest()
        finals = [m for m in rest if m.get("id") == "bye"]
        assert finals and "result" in finals[0], f"the listen stream got no result before it ended: {rest}"
        modern_schema.check_result("SubscriptionsListenResult", finals[0], "SubscriptionsListenResultResponse")
        assert rest[-1] is finals[0], f"the result is the stream's last message: {rest}"
        SSEStream(legacy_get, seconds=STOP_SECONDS).rest()  # the session's stream ends too
        status = server.wait(STOP_SECONDS)
        assert status == 0, f"exit status {status}:\n{server.stderr_text()}"


# ---------------------------------------------------------------------------------------------
# 9. A closed stream cancels its request, never the payment


@pytest.mark.parametrize("tool", ["captureCardNumber", "getPaymentStatus"])
def test_closing_a_tool_calls_stream_ends_its_wait_and_nothing_else(modern_schema, tool):
    """2026-07-28: closing a request's event stream is its cancellation (Pipecat cancels a tool
    call when the caller talks over the agent). The wait ends; the capture it started goes on to
    the caller's first card (the scripted second card would show a second capture)."""
    call_sid = "CA" + secrets.token_hex(16)
    scripts = {call_sid: {"payment-card-number": ["4242424242424242", "4000056655665556"]}}
    with http_server({"AGENT_PAYMENTS_SIMULATOR_PACING_MS": "120"}, scripts=scripts) as server:
        started = modern_tool(server, modern_schema, "startPaymentCapture", {"callSid": call_sid})
        sid = started["structuredContent"]["paymentSid"]
        if tool == "getPaymentStatus":
            modern_tool(server, modern_schema, "captureCardNumber", {"callSid": call_sid})
        body = modern_request("tools/call", {"name": tool, "arguments": {"callSid": call_sid, "waitSeconds": 3, "waitFor": "next-step"}
                                            if tool == "getPaymentStatus" else {"callSid": call_sid, "waitSeconds": 3}}, id="talked-over")
        body["params"]["_meta"]["progressToken"] = "p1"
        began = time.monotonic()
        with stream(server, "POST", modern_headers(body), body) as response:
            assert response.status_code == 200, streamed(response)
            check_sse_headers(response)
            progress = SSEStream(response, seconds=10).message()
            assert progress and progress.get("method") == "notifications/progress", progress
            assert not re.search(r"\d", progress["params"].get("message", "")), f"progress a voice may speak has no digits: {progress}"
        # The stream is closed mid-wait: the caller goes on typing, and the payment with it.
        assert time.monotonic() - began < 3, "the stream was closed before the wait's end"
        status = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = modern_tool(server, modern_schema, "getPaymentStatus",
                                 {"callSid": call_sid, "waitSeconds": 3, "waitFor": "next-step"})["structuredContent"]
            if not status["nextStep"]["waitForCaller"]:
                break
        assert status["paymentSid"] == sid and status["items"]["payment-card-number"]["state"] == "captured", status
        assert status["paymentCardNumber"].endswith("4242"), f"one capture, the caller's first card: {status}"
        assert status["nextStep"]["tool"] == "captureSecurityCode", status
