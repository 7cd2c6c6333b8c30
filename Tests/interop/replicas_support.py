"""Support for test_replicas.py: a throwaway PostgreSQL cluster, the standalone twilio-simulator
with a chosen digit pacing, agent-payments replicas in live mode sharing one database, a small
HTTP/1.1 round-robin reverse proxy in front of them (sticky by Mcp-Session-Id, streaming, with
per-backend request counts), and a raw 2026-07-28 client for tool calls to one given URL."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest

from conftest import BIN, ROOT, SchemaBook
from test_http import ENDPOINT, SSEStream, RunningServer, clean_env, describe, media_type, modern_headers, modern_request

PG_THROWAWAY = ROOT / "scripts" / "pg-throwaway"
SERVER = BIN / "agent-payments"
SIMULATOR = BIN / "twilio-simulator"
READY_SECONDS = 30


# ---------------------------------------------------------------------------------------------
# PostgreSQL


class PostgresUnavailable(Exception):
    pass


class Postgres:
    """One throwaway cluster (scripts/pg-throwaway) in a fresh folder under /tmp."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="replicas-pg-")
        os.chmod(self.root, 0o755)  # the server runs as `nobody` when this runs as root
        self.dir = os.path.join(self.root, "pg")
        self.url = None
        out = self._run("start", timeout=90)
        if out.returncode != 0:
            self._cleanup()
            raise PostgresUnavailable(f"scripts/pg-throwaway start failed (exit {out.returncode}):\n{out.stderr.strip()}")
        self.url = out.stdout.strip().splitlines()[-1]

    def _run(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([str(PG_THROWAWAY), command, self.dir], capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except FileNotFoundError as error:
            return subprocess.CompletedProcess([], 127, "", str(error))
        except subprocess.TimeoutExpired as expired:
            return subprocess.CompletedProcess([], 124, "", f"timed out after {timeout} s: {expired.stderr}")

    def halt(self) -> None:
        out = self._run("halt")
        assert out.returncode == 0, out.stderr

    def kill(self) -> None:
        out = self._run("kill")
        assert out.returncode == 0, out.stderr

    def resume(self) -> None:
        out = self._run("resume", timeout=60)
        assert out.returncode == 0, f"pg-throwaway resume: {out.stderr}"
        assert out.stdout.strip().splitlines()[-1] == self.url, (out.stdout, self.url)

    def sql(self, query: str, timeout: float = 15) -> list[list[str]]:
        """Rows of `query` (psql -At), each a list of column texts."""
        out = subprocess.run(["psql", self.url, "-v", "ON_ERROR_STOP=1", "-Atc", query], capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, f"psql {query!r}: {out.stderr}"
        return [line.split("|") for line in out.stdout.splitlines() if line != ""]

    def log(self) -> str:
        try:
            return Path(self.dir, "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def _cleanup(self) -> None:
        subprocess.run(["rm", "-rf", self.root], check=False)

    def close(self) -> None:
        self._run("stop")
        self._cleanup()


def start_postgres() -> Postgres:
    """A cluster, or the test ends: failed when AGENT_PAYMENTS_REQUIRE_POSTGRES=1, else skipped."""
    try:
        return Postgres()
    except PostgresUnavailable as error:
        if os.environ.get("AGENT_PAYMENTS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required (AGENT_PAYMENTS_REQUIRE_POSTGRES=1) but cannot start: {error}")
        pytest.skip(f"PostgreSQL cannot start here: {error}")


# ---------------------------------------------------------------------------------------------
# The stand-in Twilio


class Simulator:
    """The standalone twilio-simulator (as in test_live_mode.py), with a chosen digit pacing:
    its start line, then one line per payment created (with its StatusCallback URL) and per
    creation held; commands go to its stdin (`command`)."""

    def __init__(self, pacing_ms: int = 0, args: tuple = ()):
        self.proc = subprocess.Popen([str(SIMULATOR), "--pacing-ms", str(pacing_ms), "--report-payments", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.info = json.loads(self.proc.stdout.readline())
        self.payments: queue.Queue = queue.Queue()
        self.held: queue.Queue = queue.Queue()
        self.reports: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            if event.get("event") == "payment-created":
                self.payments.put(event)
            elif event.get("event") == "create-held":
                self.held.put(event)
            elif event.get("event") == "recordings":
                self.reports.put(event)

    def recordings(self, call_sid: str) -> list[dict]:
        """The call's recordings as the simulator holds them: sid, status, keypressesHeard, updates."""
        self.command(f"report-recordings {call_sid}")
        report = self.reports.get(timeout=10)
        assert report["callSid"] == call_sid, report
        return report["recordings"]

    def command(self, line: str) -> None:
        """`hold-creates before|after [N]` or `release-creates`."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def next_payment(self, timeout: float = 10) -> dict:
        return self.payments.get(timeout=timeout)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# ---------------------------------------------------------------------------------------------
# Replicas


def replica_env(sim: Simulator, database_url: str, callback_base: str, **extra) -> dict:
    env = clean_env()
    env.pop("DATABASE_URL", None)
    env.update({
        "TWILIO_ACCOUNT_SID": sim.info["accountSid"], "TWILIO_API_KEY": sim.info["apiKey"],
        "TWILIO_API_SECRET": sim.info["apiSecret"], "TWILIO_AUTH_TOKEN": sim.info["authToken"],
        "TWILIO_API_BASE_URL": sim.info["baseURL"], "CALLBACK_BASE_URL": callback_base,
        "DATABASE_URL": database_url, "AGENT_PAYMENTS_LOG_LEVEL": "debug",
    })
    env.update(extra)
    return env


class Replica(RunningServer):
    """One agent-payments --http 127.0.0.1:0 process; `name` labels it in failure output."""

    def __init__(self, name: str, env: dict, args: tuple = ()):
        self.name = name
        super().__init__([str(SERVER), "--http", "127.0.0.1:0", *args], env)

    def ready(self, timeout: float = READY_SECONDS) -> "Replica":
        """Once it announces its endpoint (after migrating and reading the shared key)."""
        self.wait_for_line(ENDPOINT, timeout)
        self.await_endpoint()  # parses the announced line (already there)
        return self

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def sigkill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        for reader in self.readers:
            reader.join(timeout=5)

    def dump(self) -> str:
        return f"--- replica {self.name} ({' '.join(self.argv[1:])}, exit {self.proc.poll()}) stderr:\n{self.stderr_text()}\n"


# ---------------------------------------------------------------------------------------------
# The reverse proxy


HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}


@dataclass
class Exchange:
    """One request the proxy forwarded: to which backend, what it was, and the upstream status."""
    kind: str  # "mcp", "callback" or "other"
    method: str
    path: str
    mcp_method: str | None
    session: str | None
    form: dict
    started: float
    backend: int | None = None
    status: int | None = None
    refused: list = field(default_factory=list)  # backends tried first that refused the connection
    ended: float | None = None


class Proxy:
    """An HTTP/1.1 reverse proxy on 127.0.0.1: one upstream connection per request (sent with
    `Connection: close`), the response piped back byte for byte as it arrives (every chunk at
    once: event streams stay open) until it is whole or upstream closes. The upstream connection
    is closed when the client goes away. The client connection carries the next request only
    when the response's end was seen (Content-Length, last chunk, no-body status; the backends
    answer without `Connection: close`, so clients keep their connections), else it is closed. A request with Mcp-Session-Id goes to the
    backend that minted that session (learned from the initialize response's header), or by a
    stable hash of the id if it was never seen; others go round robin, one counter per kind
    (MCP, callback) so that both kinds alternate whatever their interleaving. A backend that
    refuses the connection, or closes it before answering a byte, is skipped for the next.
    `pin(kind, index)` sends one kind to one backend (a test's way of choosing who takes what)."""

    def __init__(self, backends: list[tuple[str, int]]):
        self.backends: list[tuple[str, int] | None] = list(backends)
        self.lock = threading.Lock()
        self.turn = {"mcp": 0, "callback": 0, "other": 0}
        self.sessions: dict[str, int] = {}
        self.pins: dict[str, int] = {}
        self.log: list[Exchange] = []
        self.open: set[socket.socket] = set()
        self.closing = False
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    # -- configuration, from the test

    def set_backend(self, index: int, address: tuple[str, int] | None) -> None:
        with self.lock:
            self.backends[index] = address

    def pin(self, kind: str, index: int | None) -> None:
        with self.lock:
            if index is None:
                self.pins.pop(kind, None)
            else:
                self.pins[kind] = index

    # -- what happened

    def exchanges(self, kind: str | None = None, answered: bool = True) -> list[Exchange]:
        with self.lock:
            return [e for e in self.log if (kind is None or e.kind == kind) and (not answered or e.status is not None)]

    def counts(self) -> dict[int, dict[str, int]]:
        """Answered requests per backend and kind."""
        counts = {i: {"mcp": 0, "callback": 0, "other": 0} for i in range(len(self.backends))}
        for e in self.exchanges():
            counts[e.backend][e.kind] += 1
        return counts

    def summary(self) -> str:
        return "\n".join(f"{e.backend} {e.kind} {e.method} {e.path[:40]} {e.mcp_method or ''} {e.form.get('Capture', '')}"
                         f"{e.form.get('Result', '')} -> {e.status} refused={e.refused}" for e in self.exchanges(answered=False))

    # -- serving

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self.lock:
            self.open.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self.lock:
            self.open.discard(sock)
        try:
            sock.close()
        except OSError:
            pass

    def _choose(self, exchange: Exchange, exclude: set[int]) -> int | None:
        with self.lock:
            n = len(self.backends)
            live = [i for i in range(n) if self.backends[i] is not None and i not in exclude]
            if not live:
                return None
            if exchange.kind in self.pins and self.pins[exchange.kind] in live:
                return self.pins[exchange.kind]
            if exchange.session:
                if exchange.session in self.sessions:
                    first = self.sessions[exchange.session]
                else:
                    first = int.from_bytes(hashlib.sha256(exchange.session.encode()).digest()[:8], "big") % n
                for step in range(n):  # the sticky one, else (it is gone) the next
                    if (first + step) % n in live:
                        return (first + step) % n
            turn = self.turn[exchange.kind]
            self.turn[exchange.kind] = turn + 1
            for step in range(n):
                if (turn + step) % n in live:
                    return (turn + step) % n
            return None

    def _serve(self, client: socket.socket) -> None:
        """Serves the requests of one client connection, one after another: each gets its own
        upstream connection. The client connection stays open after a response only when that
        response's end was seen (Content-Length reached, the last chunk, or a status without a
        body) and neither side asked to close; otherwise it is closed and the client reconnects."""
        self._track(client)
        buffer = b""
        try:
            client.settimeout(120)
            while not self.closing:
                request = self._read_request(client, buffer)
                if request is None:
                    return
                exchange, forwarded, buffer, client_closes = request
                keep, buffer = self._forward(exchange, forwarded, client, buffer)
                if not keep or client_closes:
                    return
        except OSError:
            pass
        finally:
            self._untrack(client)

    def _read_request(self, client: socket.socket, buffer: bytes):
        while b"\r\n\r\n" not in buffer:
            chunk = client.recv(65536)
            if not chunk:
                return None
            buffer += chunk
            if len(buffer) > 1 << 20:
                return None
        head, _, rest = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        lower = {name.lower(): value for name, value in headers}
        if "chunked" in lower.get("transfer-encoding", "").lower():
            client.sendall(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return None
        length = int(lower.get("content-length", "0") or 0)
        while len(rest) < length:
            chunk = client.recv(65536)
            if not chunk:
                return None
            rest += chunk
        body, rest = rest[:length], rest[length:]
        path = target.split("?", 1)[0]
        kind = "mcp" if path.startswith("/mcp") else "callback" if path.startswith("/twilio/") else "other"
        form = {}
        if kind == "callback":
            form = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("latin-1")).items()}
        exchange = Exchange(kind=kind, method=method, path=path, mcp_method=lower.get("mcp-method"),
                            session=lower.get("mcp-session-id"), form=form, started=time.monotonic())
        with self.lock:
            self.log.append(exchange)
        forwarded = [lines[0]] + [f"{name}: {value}" for name, value in headers if name.lower() not in HOP_BY_HOP]
        forwarded.append("Connection: close")
        data = ("\r\n".join(forwarded) + "\r\n\r\n").encode("latin-1") + body
        return exchange, data, rest, "close" in lower.get("connection", "").lower()

    def _forward(self, exchange: Exchange, request: bytes, client: socket.socket, buffer: bytes) -> tuple[bool, bytes]:
        """Sends `request` to a backend (the next one if it refuses, or closes without answering)
        and pipes the answer back; returns whether the client connection may carry another
        request, and what the client sent meanwhile."""
        tried: set[int] = set()
        while True:
            index = self._choose(exchange, tried)
            if index is None:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                exchange.ended = time.monotonic()
                return False, buffer
            tried.add(index)
            try:
                upstream = socket.create_connection(self.backends[index], timeout=5)
            except (OSError, TypeError):
                exchange.refused.append(index)
                continue
            self._track(upstream)
            try:
                try:
                    upstream.sendall(request)
                except OSError:
                    exchange.refused.append(index)
                    continue
                outcome = self._pipe(exchange, index, upstream, client)
            finally:
                self._untrack(upstream)
            if outcome is None:  # closed before a single byte of answer: the next backend
                exchange.refused.append(index)
                continue
            complete, received = outcome
            return complete, buffer + received

    def _pipe(self, exchange: Exchange, index: int, upstream: socket.socket, client: socket.socket):
        """Copies upstream's answer to the client as it arrives, until upstream closes. None if
        not a byte came; else whether the response was seen whole (so the client connection can
        carry another request) and whatever the client sent meanwhile."""
        head = b""
        framing = None  # ("length", n) | ("chunked",) | ("none",) | ("close",)
        body_bytes = 0
        tail = b""
        received = b""
        got_any = False
        client_open = True
        while not self.closing:
            watched = [upstream, client] if client_open else [upstream]
            ready, _, _ = select.select(watched, [], [], 0.5)
            if upstream in ready:
                try:
                    data = upstream.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    exchange.ended = time.monotonic()
                    if not got_any:
                        return None
                    return False, received  # cut short, or delimited by the close: the client must see it
                if not got_any:
                    got_any = True
                    exchange.backend = index
                try:
                    client.sendall(data)
                except OSError:
                    exchange.ended = time.monotonic()
                    return False, received
                if framing is None:
                    head += data
                    if b"\r\n\r\n" in head:
                        head, _, rest = head.partition(b"\r\n\r\n")
                        framing = self._read_response_head(exchange, index, head)
                        body_bytes, tail = len(rest), rest[-16:]
                else:
                    body_bytes += len(data)
                    tail = (tail + data)[-16:]
                if self._complete(framing, body_bytes, tail):  # the whole answer is through
                    exchange.ended = time.monotonic()
                    return client_open, received
            if client_open and client in ready:
                try:
                    data = client.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the client went away: so does the upstream connection
                    exchange.ended = time.monotonic()
                    if not got_any:
                        exchange.backend = index
                    return False, received
                received += data
        return False, received

    @staticmethod
    def _complete(framing, body_bytes: int, tail: bytes) -> bool:
        if framing is None:
            return False
        if framing[0] == "none":
            return True
        if framing[0] == "length":
            return body_bytes >= framing[1]
        if framing[0] == "chunked":
            return tail.endswith(b"\r\n0\r\n\r\n") or (body_bytes == 5 and tail == b"0\r\n\r\n")
        return False

    def _read_response_head(self, exchange: Exchange, index: int, head: bytes):
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ")[1])
        except (IndexError, ValueError):
            status = 0
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("mcp-session-id"):
            with self.lock:
                self.sessions[headers["mcp-session-id"]] = index
        exchange.status = status
        if "close" in headers.get("connection", "").lower():
            return ("close",)
        if status in (204, 304) or 100 <= status < 200:
            return ("none",)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return ("chunked",)
        if "content-length" in headers:
            return ("length", int(headers["content-length"]))
        return ("close",)

    def close(self) -> None:
        self.closing = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (closing alone does not)
        except OSError:
            pass
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            sockets = list(self.open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass
        self.thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# A raw 2026-07-28 client, for tool calls to one chosen URL (a replica or the proxy)


class ToolError(AssertionError):
    def __init__(self, error: dict, text: str):
        super().__init__(f"tool refused: {text}")
        self.error = error
        self.text = text


_book: list[SchemaBook] = []


def schema() -> SchemaBook:
    if not _book:
        _book.append(SchemaBook("2026-07-28"))
    return _book[0]


def rpc(base: str, method: str, params: dict | None = None, id=1, timeout: float = 30) -> dict:
    """One 2026-07-28 request to `base`/mcp; its response (a tool's result checked against the schema)."""
    body = modern_request(method, params, id=id)
    response = httpx2.post(base + "/mcp", content=json.dumps(body).encode(), headers=modern_headers(body),
                           timeout=httpx2.Timeout(timeout))
    assert response.status_code == 200, describe(response)
    if media_type(response) == "application/json":
        return checked(method, response.json())
    assert media_type(response) == "text/event-stream", describe(response)
    messages = SSEStream(response, seconds=timeout).rest()
    assert messages and ("result" in messages[-1] or "error" in messages[-1]), messages
    return checked(method, messages[-1])


def checked(method: str, reply: dict) -> dict:
    if method == "tools/call" and "result" in reply:
        schema().check_result("CallToolResult", reply, "CallToolResultResponse")
    return reply


def tool_result(base: str, name: str, timeout: float = 30, **arguments) -> dict:
    """The CallToolResult of `name` at `base` (success or refusal)."""
    reply = rpc(base, "tools/call", {"name": name, "arguments": arguments}, timeout=timeout)
    assert "result" in reply, f"{name}: {reply}"
    return reply["result"]


def refusal_of(result: dict) -> dict:
    """A refused tool's JSON error object (its first content block)."""
    assert result.get("isError") is True, result
    text = result["content"][0]["text"]
    return json.loads(text)["error"]


def long_polls(base: str) -> dict:
    """The replica's long polls from its /metrics (read with prometheus-client's parser): how many
    wait now, and how many ended woken by a change or at their timeout."""
    from prometheus_client.parser import text_string_to_metric_families

    figures = {"waiting": 0.0, "changed": 0.0, "timed_out": 0.0}
    text = httpx2.get(base + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "agent_payments_long_polls_waiting":
                figures["waiting"] = sample.value
            elif sample.name == "agent_payments_long_polls_total":
                figures[sample.labels["outcome"]] = sample.value
    return figures


def tool(base: str, name: str, timeout: float = 30, **arguments) -> dict:
    """A tool that must succeed: its structured content."""
    result = tool_result(base, name, timeout=timeout, **arguments)
    if result.get("isError"):
        text = "\n".join(block.get("text", "") for block in result["content"])
        try:
            error = refusal_of(result)
        except (ValueError, KeyError, AssertionError):
            error = {}
        raise ToolError(error, f"{name} at {base}: {text}")
    assert result["structuredContent"] == json.loads(result["content"][0]["text"]), result
    return result["structuredContent"]


def settle_at(base: str, status: dict, wait: float = 5) -> dict:
    """Long-polls getPaymentStatus at `base` while the caller types (as the e2e tests' settle)."""
    for _ in range(100):
        if not status["nextStep"]["waitForCaller"]:
            return status
        status = tool(base, "getPaymentStatus", paymentSid=status["paymentSid"], waitSeconds=wait, afterVersion=status["version"])
    raise AssertionError(f"never settled: {status}")


def stable(status: dict) -> dict:
    """A status without what may differ between two reads of the same version: the call's own
    members (its message, how it waited, whether it was a repeat)."""
    return {k: v for k, v in status.items() if k not in ("asOf", "now", "servedBy", "message", "waited", "resumed", "repeated", "pending")}


def eventually(predicate, seconds: float, what: str, interval: float = 0.05, raise_: bool = True):
    """Polls `predicate` until it returns something truthy (returned), failing after `seconds`
    (or, with `raise_=False`, returning None)."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            if not raise_:
                return None
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# A whole bench: PostgreSQL, the simulator, the proxy, the replicas


class Bench:
    """A fresh PostgreSQL cluster, a twilio-simulator, a proxy and `count` replicas in live
    mode (each started once the one before it is ready), every replica with the same database,
    simulator and CALLBACK_BASE_URL (the proxy)."""

    def __init__(self, pacing_ms: int = 0, count: int = 2, start: bool = True, env: dict | None = None,
                 sim_args: tuple = ()):
        self.pg = None
        self.sim = None
        self.proxy = None
        self.replicas: list[Replica | None] = [None] * count
        self.retired: list[Replica] = []
        self.extra = env or {}
        self.pg = start_postgres()
        try:
            self.sim = Simulator(pacing_ms, sim_args)
            self.proxy = Proxy([None] * count)
            if start:
                for index in range(count):
                    self.start(index)
        except BaseException:
            self.close()
            raise

    def env(self, database_url: str | None = None) -> dict:
        return replica_env(self.sim, database_url or self.pg.url, self.proxy.url, **self.extra)

    def launch(self, index: int, database_url: str | None = None) -> Replica:
        """Starts replica `index` without waiting for it (the one it replaces is kept for the dump)."""
        if self.replicas[index] is not None:
            self.retired.append(self.replicas[index])
        replica = Replica("AB"[index] if index < 2 else str(index), self.env(database_url))
        self.replicas[index] = replica
        return replica

    def start(self, index: int) -> Replica:
        replica = self.launch(index).ready()
        self.proxy.set_backend(index, replica.address)
        return replica

    def url(self, index: int) -> str:
        return self.replicas[index].base

    def stop(self) -> None:
        """SIGTERM to every running replica: each must exit 0, its standard output empty."""
        for replica in self.replicas:
            if replica is not None and replica.proc.poll() is None:
                status = replica.stop()
                assert status == 0, f"replica {replica.name} exited {status} after SIGTERM:\n{replica.stderr_text()}"
                assert replica.stdout_data == b"", f"replica {replica.name} wrote to stdout: {replica.stdout_data[:500]!r}"

    def close(self) -> None:
        import sys

        for replica in self.retired + [r for r in self.replicas if r is not None]:
            if replica.proc.poll() is None:
                replica.proc.send_signal(signal.SIGTERM)
                try:
                    replica.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    replica.proc.kill()
                    replica.proc.wait(timeout=5)
            for reader in replica.readers:
                reader.join(timeout=5)
            sys.stderr.write(replica.dump())
        if self.proxy is not None:
            sys.stderr.write("--- proxy exchanges (backend kind method path mcp-method capture/result -> status):\n"
                             + self.proxy.summary() + "\n")
            self.proxy.close()
        if self.sim is not None:
            self.sim.close()
        if self.pg is not None:
            sys.stderr.write("--- postgres log (tail):\n" + self.pg.log()[-4000:] + "\n")
            self.pg.close()
