"""Several agent-payments replicas sharing one PostgreSQL database behave as one server.

Each test starts its own throwaway PostgreSQL cluster (scripts/pg-throwaway), the standalone
twilio-simulator, replicas in live mode (`--http 127.0.0.1:0`, DATABASE_URL) and a small
round-robin reverse proxy in front of them (replicas_support.Proxy: sticky by Mcp-Session-Id,
streaming). CALLBACK_BASE_URL is the proxy, so Twilio's signed callbacks land on alternating
replicas. Covered: a simultaneous start on an empty database (migrations once, the shared
callback key, `agent-payments migrate`); whole payments through the proxy with the official SDK
in both eras, status updates on one replica's stream for changes another replica accepted; a
long poll on one replica woken by callbacks taken by another; SIGKILL of a replica mid-capture;
the LISTEN connection ended by the server; PostgreSQL stopped mid-payment.

Without PostgreSQL the tests are skipped, or failed when AGENT_PAYMENTS_REQUIRE_POSTGRES=1."""

from __future__ import annotations

import concurrent.futures
import json
import re
import secrets
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning
from twilio.request_validator import RequestValidator

from conftest import SchemaBook
from replicas_support import (SERVER, Bench, Proxy, Replica, ToolError, eventually, long_polls, refusal_of, settle_at, stable,
                              tool, tool_result)
from test_agent_payments_e2e import call, new_call, settle
from test_http import listening

warnings.filterwarnings("ignore", category=DeprecationWarning)

MODERN = "2026-07-28"
CARD_LAST4 = "1111"  # the simulator's caller types 4111111111111111
# Bounds for a hang, not measures: how long an answer or a recovery is waited for before the test
# gives up. What the docs promise in time (a refusal within requestTimeout, 2 s) is proven on a
# manual clock in PostgresOutageTests and measured in Benchmarks (PostgresBenchmark's outage figures).
PROBE_SECONDS = 90  # how long a probe waits for any answer at all
RECOVERY_SECONDS = 60  # how long everything may take to work again once PostgreSQL is back


@pytest.fixture
def bench():
    benches: list[Bench] = []

    def make(**kwargs) -> Bench:
        made = Bench(**kwargs)
        benches.append(made)
        return made

    yield make
    for made in benches:
        made.close()


@pytest.fixture(scope="module")
def modern_book() -> SchemaBook:
    return SchemaBook(MODERN)


def step_tool(status: dict) -> str | None:
    tool_name = status["nextStep"].get("tool")
    if tool_name is None or not (tool_name.startswith("capture") or tool_name == "completePaymentCapture"):
        return None
    return tool_name


def finish_at(base: str, call_sid: str, status: dict) -> dict:
    """Follows nextStep at `base` (raw 2026-07-28 tool calls) to the end."""
    for _ in range(20):
        name = step_tool(status)
        if name is None:
            return status
        status = settle_at(base, tool(base, name, callSid=call_sid, paymentSid=status["paymentSid"]))
    raise AssertionError(f"too many steps: {status}")


def assert_tokenized(status: dict, call_sid: str) -> None:
    assert status["phase"] == "completed" and status["result"] == "success", status
    assert status["paymentToken"].startswith("tok_sim_"), status
    assert status["paymentCardNumber"] == "xxxxxxxxxxxx" + CARD_LAST4 and status["callSid"] == call_sid, status


def quiet(proxy: Proxy, mark: int, seconds: float = 0.3, bound: float = 10) -> None:
    """Waits until no callback has reached the proxy for `seconds` (none in flight), at most `bound`."""
    def calm():
        recent = [e for e in proxy.log[mark:] if e.kind == "callback"]
        if any(e.ended is None for e in recent):
            return False
        last = max((e.ended for e in recent), default=0)
        return time.monotonic() - last >= seconds
    eventually(calm, bound, "the simulator's callbacks to stop")


def backend_counts_both(proxy: Proxy, kinds: tuple) -> None:
    counts = proxy.counts()
    for index in (0, 1):
        for kind in kinds:
            assert counts[index][kind] >= 1, f"backend {index} took no {kind} request: {counts}\n{proxy.summary()}"


def callback_statuses(proxy: Proxy) -> set:
    return {e.status for e in proxy.exchanges("callback")}


# ---------------------------------------------------------------------------------------------
# 1. A simultaneous start on an empty database


def test_replicas_started_together_on_an_empty_database_migrate_once(bench):
    b = bench(start=False)
    rounds = 3  # each in its own, empty database: the start-up race has more than one chance
    for round in range(1, rounds + 1):
        database = f"together{round}"
        b.pg.sql(f"CREATE DATABASE {database}")
        url = re.sub(r"/postgres\?", f"/{database}?", b.pg.url)
        assert url != b.pg.url, b.pg.url
        replicas = [b.launch(0, url), b.launch(1, url)]  # both started at once, before either is ready
        for replica in replicas:
            try:
                replica.await_endpoint()
            except AssertionError as error:
                exited(replica)
                raise AssertionError(f"round {round}: replica {replica.name} started together with the other on an empty "
                                     f"database did not become ready (exit status {replica.proc.poll()}):\n{error}") from None
        for replica in replicas:
            health = httpx2.get(replica.base + "/healthz", timeout=10)
            assert health.status_code == 200, f"round {round}, {replica.name}: {health.status_code} {health.text}"
            # A tool that asks the store: an unknown session, not a store failure.
            error = refusal_of(tool_result(replica.base, "getPaymentStatus", paymentSid="PK" + "0" * 31 + "9"))
            assert error["reason"] == "unknown-session" and error["retryable"] is False, (round, replica.name, error)
        rows = _sql_in(b, url, "SELECT version, name FROM agent_payments_schema_migrations ORDER BY version")
        versions = [int(row[0]) for row in rows]
        assert versions and versions == list(range(1, len(versions) + 1)), f"round {round}: one row per migration: {rows}"
        keys = _sql_in(b, url, "SELECT count(*) FROM agent_payments_settings WHERE name = 'callback_key'")
        assert keys == [["1"]], f"round {round}: one shared callback key: {keys}"
        for replica in replicas:
            status = replica.stop()
            assert status == 0, f"round {round}: replica {replica.name} exit status {status} after SIGTERM"

    # `agent-payments migrate` afterwards: the schema is current, exit 0.
    url = re.sub(r"/postgres\?", f"/together{rounds}?", b.pg.url)
    out = _migrate(url)
    assert out.returncode == 0, f"migrate exit {out.returncode}: {out.stderr}"
    assert f"is current (version {versions[-1]})" in out.stderr, out.stderr
    assert out.stdout == "", out.stdout
    # And on an empty database it applies them, once.
    b.pg.sql("CREATE DATABASE bymigrate")
    url = re.sub(r"/postgres\?", "/bymigrate?", b.pg.url)
    out = _migrate(url)
    assert out.returncode == 0 and "applied migrations" in out.stderr, (out.returncode, out.stderr)
    assert _sql_in(b, url, "SELECT count(*) FROM agent_payments_schema_migrations") == [[str(len(versions))]]
    out = _migrate(url)
    assert out.returncode == 0 and "is current" in out.stderr, (out.returncode, out.stderr)


def test_replicas_racing_for_the_shared_callback_key_all_start_with_the_winner(bench):
    """The interleaving a simultaneous start can produce, made certain: both replicas store the
    callback key while another writer's insert of it is not yet committed (a held transaction
    here, another replica's in production). When it commits, each must use that key, not fail."""
    b = bench(start=False)
    b.pg.sql("CREATE DATABASE keyrace")
    url = re.sub(r"/postgres\?", "/keyrace?", b.pg.url)
    out = _migrate(url)
    assert out.returncode == 0, out.stderr
    key = secrets.token_hex(32)
    holder = subprocess.Popen(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAt"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        holder.stdin.write(f"BEGIN;\nINSERT INTO agent_payments_settings (name, value) VALUES ('callback_key', '{key}');\n"
                           "SELECT 'held';\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "held", "psql did not take the row"
        replicas = [b.launch(0, url), b.launch(1, url)]
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'keyrace' AND wait_event_type = 'Lock'"
        eventually(lambda: _sql_in(b, url, waiting) == [["2"]], 15, "both replicas to wait on the held callback key row")
        holder.stdin.write("COMMIT;\n")
        holder.stdin.close()
        assert holder.wait(timeout=15) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=5)
    for replica in replicas:
        try:
            replica.await_endpoint()
        except AssertionError as error:
            exited(replica)
            raise AssertionError(f"replica {replica.name}, whose callback key insert waited on another writer's, did not "
                                 f"become ready (exit status {replica.proc.poll()}):\n{error}") from None
    assert _sql_in(b, url, "SELECT value FROM agent_payments_settings WHERE name = 'callback_key'") == [[key]]
    b.stop()


@pytest.mark.parametrize("transport", [[], ["--http", "127.0.0.1:0"]], ids=["stdio", "http"])
def test_a_database_that_cannot_be_reached_ends_the_start_with_status_75_and_a_sentence(transport):
    """The database is a service of the server's group, migrated before anything listens: one that
    stays away past AGENT_PAYMENTS_DATABASE_START_SECONDS ends the process over either transport
    with status 75 (EX_TEMPFAIL: a supervisor retries) and one sentence naming it, its password
    never printed, and nothing but MCP on stdout."""
    from test_http import clean_env

    port = closed_port()
    password = "never-printed-" + secrets.token_hex(8)
    env = {**clean_env(), "DATABASE_URL": f"postgres://agent:{password}@127.0.0.1:{port}/payments?sslmode=disable",
           "AGENT_PAYMENTS_DATABASE_START_SECONDS": "1"}
    out = subprocess.run([str(SERVER), "--simulate", *transport], env=env, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.PIPE)
    assert out.returncode == 75, (out.returncode, out.stderr[-2000:])
    # The sentence names the wait, its setting's 1 s (the default is 30 s): "no answer within 1.0
    # seconds" while the first attempt is unanswered, "still after 1.0 seconds of retries" after one failed.
    assert re.search(r"(no answer within|still after) 1\.0 seconds", out.stderr), out.stderr[-2000:]
    assert f"127.0.0.1:{port}" in out.stderr and "cannot be used" in out.stderr, out.stderr[-2000:]
    assert password not in out.stderr + out.stdout
    assert out.stdout == "", out.stdout


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def exited(replica: Replica) -> None:
    """After its standard error ended: its exit status, for the message."""
    try:
        replica.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _sql_in(b: Bench, url: str, query: str) -> list[list[str]]:
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-Atc", query], capture_output=True, text=True, timeout=15)
    assert out.returncode == 0, f"psql {query!r}: {out.stderr}"
    return [line.split("|") for line in out.stdout.splitlines() if line]


def _migrate(url: str) -> subprocess.CompletedProcess:
    from test_http import clean_env

    env = {**clean_env(), "DATABASE_URL": url}
    env.pop("AGENT_PAYMENTS_DATABASE_START_SECONDS", None)
    try:
        return subprocess.run([str(SERVER), "migrate"], env=env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(f"agent-payments migrate still running after 30 s: {expired.stderr}") from None


# ---------------------------------------------------------------------------------------------
# 2 and 3. Whole payments through the proxy with the official SDK


async def eventually_async(predicate, seconds: float, what: str):
    with anyio.move_on_after(seconds):
        while True:
            value = predicate()
            if value:
                return value
            await anyio.sleep(0.05)
    raise AssertionError(f"not within {seconds} s: {what}")


async def pinned_step(b: Bench, client, call_sid: str, status: dict, watched: int, updates: list[float], pin_mcp: bool) -> dict:
    """One capture step whose callbacks (and, if `pin_mcp`, tool calls) all go to the replica
    that is not `watched` (the one holding the update stream): the stream must still carry an
    update for the step's last change, which a callback to the other replica made, and the
    watched replica's own status must catch up with it."""
    other = 1 - watched
    name = step_tool(status)
    assert name and name.startswith("capture"), status
    mark = len(b.proxy.log)
    b.proxy.pin("callback", other)
    if pin_mcp:
        b.proxy.pin("mcp", other)
    try:
        status = await settle(client, await call(client, name, callSid=call_sid, paymentSid=status["paymentSid"]))
        await anyio.to_thread.run_sync(lambda: quiet(b.proxy, mark))
    finally:
        b.proxy.pin("callback", None)
        b.proxy.pin("mcp", None)
    step = [e for e in b.proxy.log[mark:] if e.kind == "callback"]
    assert step and all(e.backend == other and e.status == 204 for e in step), f"the step's callbacks: {b.proxy.summary()}"
    last = step[-1]
    final = await anyio.to_thread.run_sync(lambda: tool(b.url(other), "getPaymentStatus", paymentSid=status["paymentSid"]))
    assert final["version"] >= status["version"], (final, status)
    await eventually_async(lambda: any(t > last.started for t in updates), 10,
                           f"an update on replica {watched}'s stream after the last callback replica {other} accepted")
    seen = None
    with anyio.move_on_after(10):
        while True:
            seen = await anyio.to_thread.run_sync(lambda: tool(b.url(watched), "getPaymentStatus", paymentSid=status["paymentSid"]))
            if seen["version"] == final["version"]:
                break
            await anyio.sleep(0.05)
    assert seen and seen["version"] == final["version"], \
        f"replica {watched} still at {seen and seen['version']}, not version {final['version']} made by a callback to replica {other}"
    assert stable(seen) == stable(final), (seen, final)
    return final


async def sdk_payment(b: Bench, mode: str) -> tuple[dict, int]:
    """A whole tokenizing payment through the proxy with the SDK, the status watched; one capture
    step with its callbacks on the other replica than the one holding the stream. Returns the
    final status and the index of the replica that held the stream."""
    call_sid = new_call()
    updates: list[float] = []
    watched: dict = {}

    async def on_message(message):
        if isinstance(message, types.ResourceUpdatedNotification) and str(message.params.uri) == watched.get("uri"):
            updates.append(time.monotonic())

    tools_used: list[str] = []
    with anyio.fail_after(120):
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=60.0)) as http:
            client = Client(streamable_http_client(b.proxy.url + "/mcp", http_client=http), mode=mode, message_handler=on_message,
                            read_timeout_seconds=30)
            async with client:
                status = await call(client, "startPaymentCapture", callSid=call_sid)
                watched["uri"] = uri = f"payment://{call_sid}/{status['paymentSid']}/status"

                async def follow(status, stream_backend: int, pin_mcp: bool):
                    for _ in range(20):
                        name = step_tool(status)
                        if name is None:
                            return status
                        tools_used.append(name)
                        if name == "captureSecurityCode":
                            status = await pinned_step(b, client, call_sid, status, stream_backend, updates, pin_mcp)
                        else:
                            status = await settle(client, await call(client, name, callSid=call_sid, paymentSid=status["paymentSid"]))
                    raise AssertionError(f"too many steps: {status}")

                if mode == "legacy":
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", MCPDeprecationWarning)
                        await client.subscribe_resource(uri)
                    session_exchanges = [e for e in b.proxy.exchanges("mcp") if e.session]
                    assert session_exchanges, b.proxy.summary()
                    session = session_exchanges[0].session
                    stream_backend = b.proxy.sessions[session]
                    await eventually_async(lambda: [e for e in b.proxy.exchanges("mcp") if e.method == "GET" and e.session == session],
                                           10, "the session's GET stream to open")
                    status = await follow(status, stream_backend, pin_mcp=False)
                    streams = [e for e in b.proxy.exchanges("mcp") if e.method == "GET" and e.session == session]
                    assert streams and all(e.backend == stream_backend and e.status == 200 for e in streams), b.proxy.summary()
                    assert any(e.ended is None for e in streams), f"the GET stream stayed open: {b.proxy.summary()}"
                    # Sticky: every request of the session went to the replica that minted it.
                    stray = [e for e in b.proxy.exchanges("mcp") if e.session == session and e.backend != stream_backend]
                    assert not stray, f"requests of session {session[:8]}… away from replica {stream_backend}: {b.proxy.summary()}"
                else:
                    async with client.listen(resource_subscriptions=[uri]):
                        listens = [e for e in b.proxy.exchanges("mcp") if e.mcp_method == "subscriptions/listen"]
                        assert len(listens) == 1, b.proxy.summary()
                        stream_backend = listens[0].backend
                        status = await follow(status, stream_backend, pin_mcp=True)
                        assert listens[0].ended is None, "the listen stream stayed open through the payment"
                body = json.loads((await client.read_resource(uri)).contents[0].text)
    assert {"captureCardNumber", "captureExpirationDate", "captureSecurityCode", "completePaymentCapture"} <= set(tools_used), tools_used
    assert_tokenized(status, call_sid)
    assert body["phase"] == "completed" and body["paymentToken"] == status["paymentToken"], body
    assert len(updates) >= 5, f"only {len(updates)} updates on the stream"
    return status, stream_backend


@pytest.mark.anyio
async def test_modern_sdk_payment_through_the_proxy(bench):
    b = bench()
    status, _ = await sdk_payment(b, MODERN)
    # Stateless: MCP requests and callbacks both alternated between the replicas.
    backend_counts_both(b.proxy, ("mcp", "callback"))
    assert callback_statuses(b.proxy) == {204}, b.proxy.summary()
    assert not any(e.refused for e in b.proxy.exchanges()), b.proxy.summary()
    b.stop()
    # Both replicas wrote to one audit chain, which `audit verify` reads from the database. Which
    # replica took the payment's commands is the proxy's round robin over every MCP request, status
    # reads included: all of them may land on one (seen once), so both are looked for in the whole
    # chain (each records its start-up at least).
    replicas = _sql_in(b, b.pg.url, "SELECT DISTINCT replica FROM agent_payments_audit")
    assert len(replicas) == 2, _sql_in(b, b.pg.url, "SELECT seq, replica, actor, action, outcome FROM agent_payments_audit")
    actions = {row[0] for row in _sql_in(b, b.pg.url, "SELECT DISTINCT action FROM agent_payments_audit")}
    assert {"configuration.loaded", "payment.start", "payment.capture", "payment.complete", "callback.accepted"} <= actions
    from test_http import clean_env

    verified = subprocess.run([str(SERVER), "audit", "verify"], env={**clean_env(), "DATABASE_URL": b.pg.url},
                              capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    count = int(_sql_in(b, b.pg.url, "SELECT count(*) FROM agent_payments_audit")[0][0])
    assert verified.returncode == 0 and verified.stdout == f"ok: {count} audit records, chain intact\n", verified


@pytest.mark.anyio
async def test_legacy_sdk_payment_through_the_proxy_sticky_by_session(bench):
    b = bench()
    status, stream_backend = await sdk_payment(b, "legacy")
    backend_counts_both(b.proxy, ("callback",))
    assert callback_statuses(b.proxy) == {204}, b.proxy.summary()
    b.stop()


# ---------------------------------------------------------------------------------------------
# 4. A long poll on replica A woken by callbacks replica B accepted


def test_a_long_poll_on_one_replica_wakes_for_callbacks_taken_by_another(bench):
    b = bench(pacing_ms=100)
    a_url, b_url = b.url(0), b.url(1)
    call_sid = new_call()
    status = tool(b_url, "startPaymentCapture", callSid=call_sid)
    sid = status["paymentSid"]
    b.proxy.pin("callback", 1)  # every callback of the capture goes to B
    mark = len(b.proxy.log)
    status = tool(b_url, "captureCardNumber", callSid=call_sid, paymentSid=sid)
    assert status["nextStep"]["waitForCaller"], status
    polls = []
    before = long_polls(a_url)
    for _ in range(60):
        after = tool(a_url, "getPaymentStatus", paymentSid=sid, waitSeconds=10, afterVersion=status["version"])
        polls.append((status["version"], after["version"]))
        assert after["version"] > status["version"], f"a long poll on A came back without a newer version: {polls}"
        status = after
        if not status["nextStep"]["waitForCaller"]:
            break
    else:
        raise AssertionError(f"the card number never settled: {polls}")
    quiet(b.proxy, mark)
    b.proxy.pin("callback", None)
    callbacks = [e for e in b.proxy.log[mark:] if e.kind == "callback"]
    assert callbacks and all(e.backend == 1 and e.status == 204 for e in callbacks), b.proxy.summary()
    # Told by A's own counts, not by a stopwatch: some long poll on A really waited and was woken
    # by a change B took, and none ran to its timeout although B took callbacks meanwhile.
    ended = long_polls(a_url)
    assert ended["changed"] > before["changed"], f"no long poll on A ever waited (the change came first each time): {polls}"
    assert ended["timed_out"] == before["timed_out"], f"a long poll on A ran to its timeout: {ended} {before} {polls}"
    assert status["items"]["payment-card-number"]["state"] == "captured", status
    assert not [e for e in b.proxy.log[mark:] if e.kind == "mcp"], "nothing went through the proxy but callbacks"
    assert stable(tool(b_url, "getPaymentStatus", paymentSid=sid)) == stable(tool(a_url, "getPaymentStatus", paymentSid=sid))
    # The rest through the proxy, round robin.
    final = finish_at(b.proxy.url, call_sid, status)
    assert_tokenized(final, call_sid)
    b.stop()


# ---------------------------------------------------------------------------------------------
# 5. SIGKILL of a replica mid-capture


def test_sigkill_of_a_replica_mid_capture_loses_nothing(bench):
    b = bench(pacing_ms=150)
    call_sid = new_call()
    status = tool(b.proxy.url, "startPaymentCapture", callSid=call_sid)
    sid = status["paymentSid"]
    mark = len(b.proxy.log)
    status = tool(b.url(0), "captureCardNumber", callSid=call_sid, paymentSid=sid)  # asked of A
    assert status["nextStep"]["waitForCaller"], status
    # Some digits typed, their callbacks taken by both replicas; then A dies mid-capture.
    eventually(lambda: len([e for e in b.proxy.log[mark:] if e.kind == "callback" and e.status == 204]) >= 3, 10,
               "three callbacks of the capture")
    killed = b.replicas[0]
    killed.sigkill()
    assert killed.proc.returncode == -9, killed.proc.returncode
    killed_at = time.monotonic()
    # B carries on alone: the callbacks meant for A are refused by its port, the proxy moves on.
    during = settle_at(b.url(1), status)
    assert during["items"]["payment-card-number"]["state"] == "captured", during
    quiet(b.proxy, mark)
    late = [e for e in b.proxy.log[mark:] if e.kind == "callback" and e.started > killed_at]
    assert late, f"no callback arrived after the kill (the capture was over too soon): {b.proxy.summary()}"
    assert any(0 in e.refused for e in late), f"no callback found A gone (the failover was not exercised): {b.proxy.summary()}"
    assert all(e.status == 204 for e in b.proxy.exchanges("callback")), b.proxy.summary()
    # A again, on the same database: the session is there, and both agree.
    restarted = b.start(0)
    assert restarted.port, restarted.stderr_text()
    at_a = tool(b.url(0), "getPaymentStatus", paymentSid=sid)
    at_b = tool(b.url(1), "getPaymentStatus", paymentSid=sid)
    assert stable(at_a) == stable(at_b), f"after the restart:\nA {json.dumps(at_a)}\nB {json.dumps(at_b)}"
    assert at_a["version"] >= during["version"] and at_a["items"]["payment-card-number"]["state"] == "captured", at_a
    # The agent finishes through the proxy (both replicas), and gets the token.
    final = finish_at(b.proxy.url, call_sid, at_a)
    assert_tokenized(final, call_sid)
    assert stable(tool(b.url(0), "getPaymentStatus", paymentSid=sid)) == stable(tool(b.url(1), "getPaymentStatus", paymentSid=sid))
    b.stop()


# ---------------------------------------------------------------------------------------------
# 6. The LISTEN connection ended by the server


LISTENERS = "SELECT pid FROM pg_stat_activity WHERE query ILIKE '%LISTEN%' AND pid <> pg_backend_pid()"


def test_a_dropped_listen_connection_is_reestablished_and_nothing_is_missed(bench, modern_book):
    b = bench()
    a, a_url, b_url = b.replicas[0], b.url(0), b.url(1)
    call_sid = new_call()
    status = tool(b_url, "startPaymentCapture", callSid=call_sid)
    sid = status["paymentSid"]
    uri = f"payment://{call_sid}/{sid}/status"
    eventually(lambda: tool(a_url, "getPaymentStatus", paymentSid=sid)["version"] == status["version"], 10, "A to see the session")
    listeners = eventually(lambda: b.pg.sql(LISTENERS), 10, "the replicas' LISTEN connections")
    assert len(listeners) == 2, f"one LISTEN connection per replica: {listeners}"
    with listening(a, modern_book, id="feed", notifications={"resourceSubscriptions": [uri]}) as (_, reader, ack):
        ended = b.pg.sql("SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE query ILIKE '%LISTEN%' AND pid <> pg_backend_pid()")
        assert len(ended) == 2 and all(row[1] == "t" for row in ended), ended
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            # A long poll on A, begun while its feed reconnects; then B changes the session.
            before = long_polls(a_url)
            poll = pool.submit(tool, a_url, "getPaymentStatus", paymentSid=sid, waitSeconds=15, afterVersion=status["version"])
            # B changes the session only once A's long poll is waiting (A's own gauge says so).
            eventually(lambda: long_polls(a_url)["waiting"] >= 1, 20, "A's long poll to wait")
            b.proxy.pin("callback", 1)
            mark = len(b.proxy.log)
            captured = tool(b_url, "captureCardNumber", callSid=call_sid, paymentSid=sid)
            woke = poll.result(timeout=30)
            assert woke["version"] > status["version"], f"the long poll on A missed B's change: {woke}"
            ended = long_polls(a_url)
            assert ended["changed"] == before["changed"] + 1 and ended["timed_out"] == before["timed_out"], (
                f"the long poll on A was not woken by B's change: {before} {ended}")
        reader.deadline = time.monotonic() + 20
        update = reader.until(lambda m: m.get("method") == "notifications/resources/updated")
        assert update["params"]["uri"] == uri, update
        modern_book.check_notification(update)
        # B finishes the card number (its callbacks on B); A hears all of it.
        done = settle_at(b_url, captured)
        quiet(b.proxy, mark)
        b.proxy.pin("callback", None)
        eventually(lambda: tool(a_url, "getPaymentStatus", paymentSid=sid)["version"] == done["version"], 15,
                   f"A to see version {done['version']} after its LISTEN connection was ended")
        assert stable(tool(a_url, "getPaymentStatus", paymentSid=sid)) == stable(tool(b_url, "getPaymentStatus", paymentSid=sid))
    # Both replicas listen again.
    again = eventually(lambda: (rows := b.pg.sql(LISTENERS)) and len(rows) == 2 and rows, 15, "two LISTEN connections again")
    assert {row[0] for row in again}.isdisjoint({row[0] for row in ended}), (again, ended)
    # And after the reconnect, long polls on A follow the next capture, asked of B, its callbacks on B.
    b.proxy.pin("callback", 1)
    mark = len(b.proxy.log)
    step = tool(b_url, "captureSecurityCode", callSid=call_sid, paymentSid=sid)
    settled = settle_at(a_url, step)
    quiet(b.proxy, mark)
    b.proxy.pin("callback", None)
    assert settled["items"]["security-code"]["state"] == "captured", settled
    assert all(e.backend == 1 for e in b.proxy.log[mark:]), b.proxy.summary()
    final = finish_at(b.proxy.url, call_sid, settled)
    assert_tokenized(final, call_sid)
    b.stop()


# ---------------------------------------------------------------------------------------------
# 7. PostgreSQL stopped mid-payment


def signed_post(url: str, fields: dict, auth_token: str, signed_url: str, timeout: float = 15) -> tuple[int, dict]:
    signature = RequestValidator(auth_token).compute_signature(signed_url, fields)
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def outage_problems(label: str, outcome) -> list[str]:
    """What is wrong with one answer given while the database is away (empty when nothing)."""
    problems = []
    if isinstance(outcome, BaseException):
        problems.append(f"{label}: no answer ({type(outcome).__name__}: {outcome})")
        return problems
    kind, value = outcome
    if kind == "callback":
        code, headers = value
        retry_after = {k.lower(): v for k, v in headers.items()}.get("retry-after")
        if code != 503 or retry_after != "1":
            problems.append(f"{label}: HTTP {code} Retry-After {retry_after!r}, expected 503 with Retry-After: 1")
        return problems
    result = value
    if result.get("isError") is not True:
        problems.append(f"{label}: succeeded with the database away: {json.dumps(result)[:300]}")
        return problems
    error = refusal_of(result)
    if error.get("reason") != "store-unavailable" or error.get("retryable") is not True or not error.get("message"):
        problems.append(f"{label}: refused with {error}, expected reason store-unavailable, retryable true")
    return problems


def retried(base: str, name: str, seconds: float = 30, **arguments) -> dict:
    """A tool call repeated while it answers store-unavailable (and only then), within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return tool(base, name, **arguments)
        except ToolError as refused:
            if refused.error.get("reason") != "store-unavailable" or refused.error.get("retryable") is not True:
                raise
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} at {base} still store-unavailable {seconds} s after PostgreSQL was back") from None
            time.sleep(0.2)


def test_postgres_stopped_mid_payment(bench):
    b = bench()
    a_url, b_url = b.url(0), b.url(1)
    call_sid = new_call()
    status = tool(b.proxy.url, "startPaymentCapture", callSid=call_sid)
    sid = status["paymentSid"]
    created = b.sim.next_payment()
    assert created["paymentSid"] == sid, created
    callback_url = created["statusCallback"]
    assert callback_url.startswith(b.proxy.url + "/"), callback_url
    mark = len(b.proxy.log)
    status = settle_at(b.proxy.url, tool(b.proxy.url, "captureCardNumber", callSid=call_sid, paymentSid=sid))
    quiet(b.proxy, mark)
    assert status["nextStep"].get("tool") == "captureSecurityCode", status
    before = tool(b_url, "getPaymentStatus", paymentSid=sid, waitSeconds=0.2, afterVersion=status["version"])
    assert stable(before) == stable(tool(a_url, "getPaymentStatus", paymentSid=sid, waitSeconds=0.2, afterVersion=before["version"]))
    rows_before = b.pg.sql(f"SELECT version, phase, session::text FROM agent_payments_sessions WHERE payment_sid = '{sid}'")

    b.pg.halt()
    fields = {"Sid": sid, "CallSid": call_sid, "AccountSid": b.sim.info["accountSid"], "Capture": "security-code",
              "PartialResult": "true", "SecurityCode": "x", "Required": "security-code,expiration-date"}
    path = urllib.parse.urlsplit(callback_url).path
    token = b.sim.info["authToken"]

    def tool_probe(base, name, **arguments):
        return "tool", tool_result(base, name, timeout=PROBE_SECONDS, **arguments)

    def callback_probe(target):
        return "callback", signed_post(target, fields, token, callback_url, timeout=PROBE_SECONDS)

    # Every probe at once (each bounded by PROBE_SECONDS, so none is abandoned while the server
    # may still act on it later): tools that must reach the store, and genuine callbacks.
    probes = {
        "captureSecurityCode at A": lambda: tool_probe(a_url, "captureSecurityCode", callSid=call_sid, paymentSid=sid),
        "captureSecurityCode at B": lambda: tool_probe(b_url, "captureSecurityCode", callSid=call_sid, paymentSid=sid),
        "getPaymentStatus waitSeconds=2 via the proxy": lambda: tool_probe(b.proxy.url, "getPaymentStatus", paymentSid=sid,
                                                                           waitSeconds=2, afterVersion=before["version"]),
        "startPaymentCapture (another call) at A": lambda: tool_probe(a_url, "startPaymentCapture", callSid=new_call()),
        "a signed callback via the proxy": lambda: callback_probe(callback_url),
        "a signed callback at A": lambda: callback_probe(a_url + path),
        "a signed callback at B": lambda: callback_probe(b_url + path),
    }
    problems: list[str] = []
    try:
        with concurrent.futures.ThreadPoolExecutor(len(probes)) as pool:
            def answer(probe):
                try:
                    return probe()
                except Exception as error:  # noqa: BLE001 - reported below, with its label
                    return error
            futures = {label: pool.submit(answer, probe) for label, probe in probes.items()}
            for label, future in futures.items():
                problems += outage_problems(label, future.result(timeout=PROBE_SECONDS + 30))
        # The probes a Kubernetes deployment reads: alive, not ready, naming the store and nothing of it.
        for base in (a_url, b_url):
            live = httpx2.get(base + "/livez", timeout=10)
            if live.status_code != 200:
                problems.append(f"/livez at {base} with the database away: {live.status_code} {live.text}")
            ready = httpx2.get(base + "/readyz", timeout=10)
            if ready.status_code != 503 or ready.json().get("checks", {}).get("store") == "ok":
                problems.append(f"/readyz at {base} with the database away: {ready.status_code} {ready.text}")
            elif "127.0.0.1" in ready.text or "postgres" in ready.text:
                problems.append(f"/readyz at {base} names the database: {ready.text}")
        # A plain status read may come from the replica's snapshot; if it answers, it is the truth.
        for base in (a_url, b_url):
            result = tool_result(base, "getPaymentStatus", timeout=PROBE_SECONDS, paymentSid=sid)
            if result.get("isError"):
                problems += outage_problems(f"getPaymentStatus at {base}", ("tool", result))
            elif stable(result["structuredContent"]) != stable(before):
                problems.append(f"getPaymentStatus at {base} with the database away differs from before: {result['structuredContent']}")
    finally:
        b.pg.resume()

    # Back: the same session, untouched, continues to the end.
    after = retried(a_url, "getPaymentStatus", seconds=RECOVERY_SECONDS, paymentSid=sid, waitSeconds=0.2,
                    afterVersion=before["version"])
    assert stable(after) == stable(before), f"before the outage:\n{json.dumps(before)}\nafter:\n{json.dumps(after)}"
    assert b.pg.sql(f"SELECT version, phase, session::text FROM agent_payments_sessions WHERE payment_sid = '{sid}'") == rows_before
    step = retried(b_url, "captureSecurityCode", seconds=RECOVERY_SECONDS, callSid=call_sid, paymentSid=sid)
    for base in (a_url, b_url):
        eventually(lambda: httpx2.get(base + "/readyz", timeout=10).status_code == 200, RECOVERY_SECONDS,
                   f"{base}/readyz to say ready once PostgreSQL is back")
    final = finish_at(b.proxy.url, call_sid, settle_at(b.proxy.url, step))
    assert_tokenized(final, call_sid)
    row = b.pg.sql(f"SELECT version, phase FROM agent_payments_sessions WHERE payment_sid = '{sid}'")
    assert row == [[str(final["version"]), "completed"]], (row, final["version"])
    for base in (a_url, b_url):  # each replica's own view (its snapshot, fed by its LISTEN connection) catches up
        seen = []
        if not eventually(lambda: seen.append(tool(base, "getPaymentStatus", paymentSid=sid)) or seen[-1]["version"] == final["version"],
                          RECOVERY_SECONDS, f"{base} to show version {final['version']}", raise_=False):
            problems.append(f"getPaymentStatus at {base} still shows version {seen[-1]['version']} ({seen[-1]['phase']}) "
                            f"{RECOVERY_SECONDS} s after the payment completed at version {final['version']}")
        else:
            assert stable(seen[-1]) == stable(final), (base, seen[-1], final)
    b.stop()
    assert not problems, "with PostgreSQL stopped (pg_ctl stop -m fast):\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# 8. A start stranded by a replica killed before Twilio answered


@pytest.mark.parametrize("hold,survivor", [("before", "another replica"), ("after", "the same replica, restarted")])
def test_a_start_stranded_by_a_killed_replica_is_settled_with_its_key(bench, hold, survivor):
    """Replica A stores a start and sends its creation; the simulator holds it (`before`: Twilio
    never saw it; `after`: Twilio created the payment and the answer is lost) and A is killed.
    Once the start is older than AGENT_PAYMENTS_STRANDED_START_SECONDS, the survivor's
    maintenance sends the creation again with the stored key: Twilio creates the payment once,
    the session becomes active, and the payment goes to the end. A new start on the call
    meanwhile is answered with that session's state, and the recovery is in the audit trail.
    (Twilio's callback after a create carries the payment SID and would settle the session by
    itself: with `after`, it is sent while no replica is behind the proxy, and lost, as it would
    be with the only replica dead.)"""
    two = survivor == "another replica"
    b = bench(count=2 if two else 1, env={"AGENT_PAYMENTS_STRANDED_START_SECONDS": "1"})
    call_sid = new_call()
    if not two:
        b.proxy.set_backend(0, None)
    b.sim.command(f"hold-creates {hold}")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        starting = pool.submit(tool_result, b.url(0), "startPaymentCapture", callSid=call_sid)
        held = b.sim.held.get(timeout=30)
        assert held["hold"] == hold, held
        assert b.pg.sql(f"SELECT phase FROM agent_payments_sessions WHERE call_sid = '{call_sid}'") == [["starting"]]
        # A new start with other options while A still sends the creation: answered with the
        # starting session's state (since when, and when another replica would settle it).
        young = tool_result(b.url(0), "startPaymentCapture", callSid=call_sid, chargeAmount="12.00", currency="usd")
        refusal = refusal_of(young)
        assert refusal["reason"] == "session-in-progress" and refusal["phase"] == "starting", young
        assert refusal["startedAt"] < refusal["settledBy"] and "paymentSid" not in refusal, young
        assert young["structuredContent"]["nextStep"]["tool"] == "getPaymentStatus", young
        b.replicas[0].sigkill()
        try:
            starting.result(timeout=30)  # the connection went with A; any answer it gave is moot
        except Exception:  # noqa: BLE001
            pass
    if hold == "after":
        created = b.sim.next_payment()
        assert created["callSid"] == call_sid, created
    url = b.url(1) if two else b.start(0).base

    # The survivor's maintenance settles it (only status reads are made meanwhile).
    status = eventually(lambda: (s := tool(url, "getPaymentStatus", callSid=call_sid)).get("paymentSid") and s, 30,
                        "the stranded start to be settled")
    assert status["phase"] == "active", status
    if hold == "after":
        assert status["paymentSid"] == created["paymentSid"], (status, created)
    else:
        created = b.sim.next_payment()
        assert created == {**created, "callSid": call_sid, "paymentSid": status["paymentSid"]}, (created, status)
    # A new start with other options now is refused naming the session that runs, and how to end it.
    other = tool_result(url, "startPaymentCapture", callSid=call_sid, chargeAmount="12.00", currency="usd")
    refusal = refusal_of(other)
    assert refusal["reason"] == "session-in-progress" and refusal["paymentSid"] == status["paymentSid"], other
    assert other["structuredContent"]["nextStep"]["tool"] == "cancelPaymentCapture", other
    recovered = b.pg.sql("SELECT replica, outcome, payment_sid FROM agent_payments_audit "
                         f"WHERE action = 'payment.start.recovered' AND call_sid = '{call_sid}'")
    assert [row[1:] for row in recovered] == [["ok", status["paymentSid"]]], recovered

    step = tool(url, "captureCardNumber", callSid=call_sid, paymentSid=status["paymentSid"])
    final = finish_at(url, call_sid, settle_at(url, step))
    assert_tokenized(final, call_sid)
    # The held request, answered now, creates nothing more: its key was used.
    b.sim.command("release-creates")
    again = tool_result(url, "startPaymentCapture", callSid=new_call())
    assert not again.get("isError"), again
    assert b.sim.next_payment()["callSid"] != call_sid, "one payment for the stranded call"
    b.stop()


# ---------------------------------------------------------------------------------------------
# 9. The call's recording paused by one replica, resumed by another


def test_a_recording_paused_by_a_killed_replica_is_resumed_by_the_one_that_finishes(bench):
    """AGENT_PAYMENTS_PAUSE_RECORDINGS=on, a recorded call (the simulator's --record-calls): A
    starts the payment, pausing the recording before Twilio creates it, and is killed. B takes the
    card and completes it; storing the finish, B resumes the recording A paused (its SID is in the
    stored session). The simulator heard no keypress while recording."""
    b = bench(env={"AGENT_PAYMENTS_PAUSE_RECORDINGS": "on"}, sim_args=("--record-calls",))
    call_sid = new_call()
    started = tool(b.url(0), "startPaymentCapture", callSid=call_sid)
    assert started["recordings"] == {"state": "paused", "paused": 1}, started
    [recording] = b.sim.recordings(call_sid)
    assert recording["status"] == "paused" and recording["updates"] == 1, recording
    b.replicas[0].sigkill()
    b.proxy.set_backend(0, None)
    url = b.url(1)
    step = tool(url, "captureCardNumber", callSid=call_sid, paymentSid=started["paymentSid"])
    final = finish_at(url, call_sid, settle_at(url, step))
    assert_tokenized(final, call_sid)
    resumed = eventually(lambda: (s := tool(url, "getPaymentStatus", callSid=call_sid))["recordings"]["state"] != "paused" and s,
                         30, "the recording to be resumed")
    assert resumed["recordings"] == {"state": "resumed", "paused": 1}, resumed
    [recording] = b.sim.recordings(call_sid)
    assert recording == {**recording, "status": "in-progress", "updates": 2, "keypressesHeard": 0}, recording
    b.stop()
