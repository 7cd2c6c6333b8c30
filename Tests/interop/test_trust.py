"""Trust on a shared deployment (Docs/http.md: Closed by default; Principals, ownership and
scopes; Amounts due; Docs/configuration.md: the spending policy): the real agent-payments binary
with `--http`, in --simulate mode, several principals at once over real HTTP, some through the
official MCP Python SDK (mcp 2.3.0), some as raw requests of either era.

Each principal sees only its own payments (and its tenant's; an operator sees all): to anyone
else a payment does not exist, on every MCP surface, and every answer is the one for a SID
nobody knows. Scopes are enforced with the MCP authorization spec's step-up (403
insufficient_scope). The spending policy and the backend's amount due bound what an agent can
charge. An exposed /mcp without authentication refuses to start. Tool calls and refused
authentications are rate-limited (429 with Retry-After)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import warnings
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from conftest import SchemaBook
from test_agent_payments_e2e import call, new_call, settle
from test_http import (ENDPOINT, LEGACY, MODERN, SERVER, TIMEOUT, RunningServer, challenge, clean_env,
                       describe, error_reply, http_server, issuer_running, legacy_headers, legacy_request, legacy_session,
                       listening, modern_headers, modern_request, mpost, oauth_env, post, reply_of)

pytestmark = pytest.mark.anyio
warnings.filterwarnings("ignore", category=DeprecationWarning)

TEMPLATE = "payment://{callSid}/{paymentSid}/status"
STEP_UP = 'Bearer error="insufficient_scope", scope="payments:capture"'
# The tools that act on a session, each refused alike for a session the caller may not see.
SESSION_TOOLS = ("getPaymentStatus", "captureCardNumber", "completePaymentCapture", "cancelPaymentCapture")
CAPTURE_TOOLS = {"startPaymentCapture", "captureCardNumber", "captureSecurityCode", "captureExpirationDate", "capturePostalCode",
                 "captureBankRoutingNumber", "captureBankAccountNumber", "completePaymentCapture", "cancelPaymentCapture"}
REFUSAL_SECONDS = 10


def secret() -> str:
    return os.urandom(24).hex()


def ghost_sid() -> str:
    return "PK" + os.urandom(16).hex()


def uri_of(call_sid: str, sid: str) -> str:
    return f"payment://{call_sid}/{sid}/status"


def reason(result: dict) -> str:
    assert result["isError"], f"expected a refusal: {result}"
    return result["structuredContent"]["error"]["reason"]


def swapped(value, old: str, new: str):
    """`value` (any JSON) with every occurrence of `old` in its text replaced by `new`."""
    return json.loads(json.dumps(value).replace(old, new))


# ---------------------------------------------------------------------------------------------
# Principals: one interface over the official SDK client and raw requests of either era


class Principal:
    """One token holder's view of the server. Tool results come back as {isError,
    structuredContent, text}; resources/read as ("ok", contents text) or ("error", {code,
    message, data}); completions as their values."""

    name = "?"

    async def tool(self, tool: str, **arguments) -> dict:
        raise NotImplementedError

    async def uris(self) -> set[str]:
        raise NotImplementedError

    async def read(self, uri: str) -> tuple[str, object]:
        raise NotImplementedError

    async def complete(self, argument: str, value: str, context: dict | None = None) -> list[str]:
        raise NotImplementedError

    async def prompt(self, name: str, **arguments) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


_books: dict[str, SchemaBook] = {}


def schema_book(era: str) -> SchemaBook:
    if era not in _books:
        _books[era] = SchemaBook(era)
    return _books[era]


class RawPrincipal(Principal):
    """A principal speaking JSON over HTTP with its bearer token: 2026-07-28 (one POST per
    request, `_meta` and the Mcp-* headers) or a legacy session of its own."""

    def __init__(self, server: RunningServer, token: str, name: str, era: str = MODERN):
        self.server, self.token, self.name, self.era = server, token, name, era
        self.book = schema_book(era)
        self.session = legacy_session(server, self.book, token=token) if era == LEGACY else None
        self.ids = 100

    def _request_sync(self, method: str, params: dict | None) -> dict:
        self.ids += 1
        if self.era == MODERN:
            response = mpost(self.server, method, params, id=self.ids, token=self.token)
        else:
            response = post(self.server, legacy_request(method, params or {}, id=self.ids),
                            legacy_headers(self.session, token=self.token))
        assert response.status_code == 200, f"{self.name} {method}: {describe(response)}"
        _, reply = reply_of(response)
        assert reply.get("id") == self.ids, reply
        return reply

    async def request(self, method: str, params: dict | None = None) -> dict:
        return await anyio.to_thread.run_sync(partial(self._request_sync, method, params))

    async def tool(self, tool: str, **arguments) -> dict:
        reply = await self.request("tools/call", {"name": tool, "arguments": arguments})
        self.book.check_result("CallToolResult", reply)
        result = reply["result"]
        return {"isError": bool(result.get("isError")), "structuredContent": result["structuredContent"],
                "text": "".join(block["text"] for block in result["content"])}

    async def uris(self) -> set[str]:
        reply = await self.request("resources/list")
        self.book.check_result("ListResourcesResult", reply)
        return {resource["uri"] for resource in reply["result"]["resources"]}

    async def read(self, uri: str) -> tuple[str, object]:
        reply = await self.request("resources/read", {"uri": uri})
        if "error" in reply:
            return "error", reply["error"]
        self.book.check_result("ReadResourceResult", reply)
        return "ok", reply["result"]["contents"][0]["text"]

    async def complete(self, argument: str, value: str, context: dict | None = None) -> list[str]:
        params = {"ref": {"type": "ref/resource", "uri": TEMPLATE}, "argument": {"name": argument, "value": value}}
        if context:
            params["context"] = {"arguments": context}
        reply = await self.request("completion/complete", params)
        self.book.check_result("CompleteResult", reply)
        return reply["result"]["completion"]["values"]

    async def prompt(self, name: str, **arguments) -> str:
        reply = await self.request("prompts/get", {"name": name, "arguments": arguments})
        self.book.check_result("GetPromptResult", reply)
        return "\n".join(message["content"]["text"] for message in reply["result"]["messages"])


class SDKPrincipal(Principal):
    """A principal behind the official SDK's `Client` over Streamable HTTP (legacy or a pinned
    2026-07-28), its token on every request; resource updates it hears are kept in `updates`."""

    def __init__(self, client: Client, name: str):
        self.client, self.name = client, name
        self.updates: list[str] = []

    async def tool(self, tool: str, **arguments) -> dict:
        result = await self.client.call_tool(tool, arguments)
        return {"isError": bool(result.is_error), "structuredContent": result.structured_content,
                "text": "".join(block.text for block in result.content)}

    async def uris(self) -> set[str]:
        listed = await self.client.list_resources(cache_mode="bypass")
        return {str(resource.uri) for resource in listed.resources}

    async def read(self, uri: str) -> tuple[str, object]:
        try:
            result = await self.client.read_resource(uri, cache_mode="bypass")
        except MCPError as error:
            return "error", error.error.model_dump(mode="json", exclude_none=True)
        return "ok", result.contents[0].text

    async def complete(self, argument: str, value: str, context: dict | None = None) -> list[str]:
        ref = types.ResourceTemplateReference(type="ref/resource", uri=TEMPLATE)
        result = await self.client.complete(ref, {"name": argument, "value": value}, context_arguments=context)
        return list(result.completion.values)

    async def prompt(self, name: str, **arguments) -> str:
        result = await self.client.get_prompt(name, arguments)
        return "\n".join(message.content.text for message in result.messages)


@asynccontextmanager
async def sdk_principal(server: RunningServer, token: str, name: str, mode: str):
    principal: SDKPrincipal | None = None

    async def on_message(message):
        if isinstance(message, types.ResourceUpdatedNotification) and principal is not None:
            principal.updates.append(str(message.params.uri))

    async with httpx2.AsyncClient(timeout=httpx2.Timeout(15.0), headers={"Authorization": f"Bearer {token}"}) as http:
        client = Client(streamable_http_client(server.mcp, http_client=http), mode=mode, message_handler=on_message,
                        read_timeout_seconds=15)
        async with client:
            if mode == "legacy":
                assert client.protocol_version.startswith("2025-"), client.protocol_version
            else:
                assert client.protocol_version == MODERN, client.protocol_version
            principal = SDKPrincipal(client, name)
            yield principal


# ---------------------------------------------------------------------------------------------
# What "sees" and "does not see" mean


async def start(principal: Principal, call_sid: str, **options) -> str:
    result = await principal.tool("startPaymentCapture", callSid=call_sid, **options)
    assert not result["isError"], (principal, result)
    return result["structuredContent"]["paymentSid"]


async def sees(principal: Principal, call_sid: str, sid: str) -> None:
    """`principal` finds the payment on every surface."""
    for arguments in ({"paymentSid": sid}, {"callSid": call_sid}):
        status = await principal.tool("getPaymentStatus", **arguments)
        assert not status["isError"] and status["structuredContent"]["paymentSid"] == sid, (principal, arguments, status)
    uri = uri_of(call_sid, sid)
    assert uri in await principal.uris(), (principal, uri)
    kind, body = await principal.read(uri)
    assert kind == "ok" and json.loads(body)["paymentSid"] == sid, (principal, kind, body)
    assert sid in await principal.complete("paymentSid", "PK"), principal
    assert sid in await principal.complete("paymentSid", "", {"callSid": call_sid}), principal
    assert call_sid in await principal.complete("callSid", "CA"), principal
    # The guidance prompt is tailored to the session (so a stranger's untailored one says something).
    assert await principal.prompt("CardNumber", paymentSid=sid) != await principal.prompt("CardNumber", paymentSid=ghost_sid()), principal


async def does_not_see(stranger: Principal, call_sid: str, sid: str) -> None:
    """To `stranger` the payment does not exist: every tool answers exactly what it answers for
    a SID (or a call) nobody knows (so cancelling it does nothing), starting on its call is
    `call-busy` without naming it, the resource is neither listed, nor readable, nor completed,
    and no prompt is tailored to it."""
    ghost, ghost_call = ghost_sid(), new_call()
    for tool in SESSION_TOOLS:
        real = await stranger.tool(tool, paymentSid=sid)
        assert reason(real) == "unknown-session", (stranger, tool, real)
        nobody = await stranger.tool(tool, paymentSid=ghost)
        assert swapped(real, sid, ghost) == nobody, f"{stranger} {tool}: another's payment answers unlike an unknown one:\n{real}\n{nobody}"
        real = await stranger.tool(tool, callSid=call_sid)
        assert reason(real) == "no-session", (stranger, tool, real)
        nobody = await stranger.tool(tool, callSid=ghost_call)
        assert swapped(real, call_sid, ghost_call) == nobody, f"{stranger} {tool} by call:\n{real}\n{nobody}"
    busy = await stranger.tool("startPaymentCapture", callSid=call_sid)
    assert reason(busy) == "call-busy", (stranger, busy)
    assert sid not in json.dumps(busy), f"call-busy names no SID: {busy}"

    uri = uri_of(call_sid, sid)
    assert uri not in await stranger.uris(), (stranger, uri)
    real = await stranger.read(uri)
    nobody = await stranger.read(uri_of(call_sid, ghost))
    assert real[0] == "error", (stranger, real)
    assert swapped(list(real), sid, ghost) == list(nobody), f"{stranger} reads another's payment unlike an unknown one:\n{real}\n{nobody}"
    assert sid not in await stranger.complete("paymentSid", "PK"), stranger
    assert await stranger.complete("paymentSid", "", {"callSid": call_sid}) == [], stranger
    assert call_sid not in await stranger.complete("callSid", "CA"), stranger
    # The guidance prompts are tailored to a session only for those who may see it.
    for arguments, ghostly in (({"paymentSid": sid}, {"paymentSid": ghost}), ({"callSid": call_sid}, {"callSid": ghost_call})):
        real, nobody = await stranger.prompt("CardNumber", **arguments), await stranger.prompt("CardNumber", **ghostly)
        assert swapped(real, sid, ghost).replace(call_sid, ghost_call) == nobody, (stranger, arguments, real, nobody)


async def in_thread(function, *args):
    return await anyio.to_thread.run_sync(partial(function, *args))


LIST_CHANGED = "notifications/resources/list_changed"


def updates_until(reader, uri: str) -> list[str]:
    """What a listen stream says up to and including an update of `uri`: the URI of each update,
    and LIST_CHANGED for each change of the resource list."""
    seen = []
    while True:
        message = reader.message()
        assert message is not None, f"the listen stream ended before an update of {uri}: {seen}"
        if message.get("method") == "notifications/resources/updated":
            seen.append(message["params"]["uri"])
            if seen[-1] == uri:
                return seen
        elif message.get("method") == LIST_CHANGED:
            seen.append(LIST_CHANGED)


async def eventually(predicate, what: str, seconds: float = 10) -> None:
    with anyio.move_on_after(seconds):
        while not predicate():
            await anyio.sleep(0.05)  # polling a condition with a deadline, not ordering
    assert predicate(), f"not within {seconds} s: {what}"


# ---------------------------------------------------------------------------------------------
# (i) Two static-token principals at once, and an operator


async def test_token_holders_see_only_their_own_payments_and_the_operator_sees_all():
    alice, bob, carol, ops = secret(), secret(), secret(), secret()
    # The logs' redactor masks any run of 12 or more digits as a possible card number, so a token
    # whose principal (12 hex digits of its SHA-256) happens to be all digits — one in ~280 —
    # is logged masked; such a token is drawn again, the log line is asserted below.
    unnamed = secret()
    while hashlib.sha256(unnamed.encode()).hexdigest()[:12].isdigit():
        unnamed = secret()
    env = {"AGENT_PAYMENTS_HTTP_TOKENS": f"alice@acme:{alice}, bob@globex:{bob}, carol@acme:{carol},"
                                         f" ops:{ops}:payments:read payments:operator, {unnamed}"}
    with anyio.fail_after(30), http_server(env) as server:
        async with sdk_principal(server, alice, "alice (SDK, legacy)", "legacy") as a:
            b = RawPrincipal(server, bob, "bob (raw, 2026-07-28)")
            call_a, call_b = new_call(), new_call()
            sid_a, sid_b = await start(a, call_a), await start(b, call_b)

            await sees(a, call_a, sid_a)
            await sees(b, call_b, sid_b)
            await does_not_see(b, call_a, sid_a)
            await does_not_see(a, call_b, sid_b)

            # Carol, of Alice's tenant, sees Alice's payment and not Bob's.
            c = RawPrincipal(server, carol, "carol@acme (raw, 2026-07-28)")
            await sees(c, call_a, sid_a)
            await does_not_see(c, call_b, sid_b)

            # The operator (a raw legacy session) sees and reads both, with only its read scope.
            o = RawPrincipal(server, ops, "ops (raw, legacy)", era=LEGACY)
            await sees(o, call_a, sid_a)
            await sees(o, call_b, sid_b)
            # A legacy session belongs to the principal that opened it: another's token cannot use it.
            response = post(server, legacy_request("tools/list", {}), legacy_headers(o.session, token=bob))
            error_reply(response, 404, o.book)

            # Subscriptions: each may subscribe to the other's URI (as to any URI) but hears nothing
            # of it, nor of the list changing when the other starts a payment.
            with listening(server, b.book, id="bob-watch", token=bob,
                           notifications={"resourcesListChanged": True,
                                          "resourceSubscriptions": [uri_of(call_a, sid_a), uri_of(call_b, sid_b)]}) as (_, reader, ack):
                assert uri_of(call_a, sid_a) in ack["params"]["notifications"]["resourceSubscriptions"], ack
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MCPDeprecationWarning)  # the legacy era's way, on purpose
                    await a.client.subscribe_resource(uri_of(call_b, sid_b))
                    await a.client.subscribe_resource(uri_of(call_a, sid_a))
                # Alice starts another payment and hers changes, then Bob's: Bob's stream carries only his own.
                await start(a, new_call())
                status_a = await settle(a.client, await call(a.client, "captureCardNumber", callSid=call_a, paymentSid=sid_a))
                await b.tool("captureCardNumber", callSid=call_b, paymentSid=sid_b)
                heard = await in_thread(updates_until, reader, uri_of(call_b, sid_b))
                assert uri_of(call_a, sid_a) not in heard and LIST_CHANGED not in heard, f"bob heard of alice's payments: {heard}"
                # His own new payment does change his list.
                await start(b, new_call())
                await in_thread(reader.until, lambda message: message.get("method") == LIST_CHANGED)
            # Bob's caller finishes typing; then Alice's payment changes again and she hears it,
            # having heard nothing of Bob's.
            deadline = time.monotonic() + 10
            while (await b.tool("getPaymentStatus", paymentSid=sid_b, waitSeconds=2, waitFor="next-step"))["structuredContent"]["nextStep"]["waitForCaller"]:
                assert time.monotonic() < deadline, "bob's caller never finished typing"
            a.updates.clear()
            await call(a.client, status_a["nextStep"]["tool"], callSid=call_a, paymentSid=sid_a)
            await eventually(lambda: uri_of(call_a, sid_a) in a.updates, "alice hears of her own payment")
            assert uri_of(call_b, sid_b) not in a.updates, f"alice heard of bob's payment: {a.updates}"

        # An unnamed token's principal is token: and 12 hex digits of its SHA-256 (as logs show it).
        RawPrincipal(server, unnamed, "unnamed", era=LEGACY)
        assert f"token:{hashlib.sha256(unnamed.encode()).hexdigest()[:12]}" in server.stderr_text()
        assert "token:alice" in server.stderr_text() or "token:ops" in server.stderr_text()
        for token in (alice, bob, ops, unnamed):
            assert token not in server.stderr_text(), "tokens never appear in logs"


# ---------------------------------------------------------------------------------------------
# (ii) OAuth principals: sub, client_id, azp; tenants; none refused


async def test_oauth_subjects_see_only_their_own_payments_and_tenant_mates_share():
    with anyio.fail_after(30), issuer_running() as issuer, \
            http_server(oauth_env(issuer, scope=None, AGENT_PAYMENTS_OAUTH_TENANT_CLAIM="tid")) as server:
        token_a = issuer.token(sub="agent-a", tid="acme")
        token_b = issuer.token(sub="agent-b", tid="globex")
        mate = RawPrincipal(server, issuer.token(sub="agent-c", tid="acme"), "agent-c (acme)")
        ops = RawPrincipal(server, issuer.token(sub="ops", scope="payments:read payments:operator"), "ops", era=LEGACY)
        async with sdk_principal(server, token_a, "agent-a (SDK, 2026-07-28)", MODERN) as a:
            b = RawPrincipal(server, token_b, "agent-b (raw, legacy)", era=LEGACY)
            call_a, call_b = new_call(), new_call()
            sid_a, sid_b = await start(a, call_a), await start(b, call_b)
            await sees(a, call_a, sid_a)
            await sees(b, call_b, sid_b)
            await does_not_see(b, call_a, sid_a)
            await does_not_see(a, call_b, sid_b)
            # Same tenant: agent-c sees and acts on agent-a's payment, not agent-b's.
            await sees(mate, call_a, sid_a)
            assert not (await mate.tool("captureCardNumber", callSid=call_a, paymentSid=sid_a))["isError"]
            assert reason(await mate.tool("getPaymentStatus", paymentSid=sid_b)) == "unknown-session"
            await sees(ops, call_a, sid_a)
            await sees(ops, call_b, sid_b)

            # No sub: the client_id is the principal; another token of that client is the same one.
            service = RawPrincipal(server, issuer.token(sub=None, client_id="svc-x"), "client svc-x", era=LEGACY)
            call_x = new_call()
            sid_x = await start(service, call_x)
            await sees(RawPrincipal(server, issuer.token(sub=None, client_id="svc-x"), "client svc-x again"), call_x, sid_x)
            assert "oauth-client:svc-x" in server.stderr_text(), "the principal is oauth-client:<client_id>"
            # No sub nor client_id: azp is; another client does not see svc-x's payment.
            other_client = RawPrincipal(server, issuer.token(sub=None, azp="svc-y"), "azp svc-y")
            assert reason(await other_client.tool("getPaymentStatus", paymentSid=sid_x)) == "unknown-session"
            await does_not_see(a, call_x, sid_x)

        # A token that names nobody is refused outright.
        response = mpost(server, "server/discover", token=issuer.token(sub=None))
        error_reply(response, 401, schema_book(MODERN))
        assert 'error="invalid_token"' in challenge(response), response.headers

        # Step-up with OAuth: the challenge names the scope and the protected-resource metadata.
        reader = issuer.token(sub="reader", scope="payments:read")
        response = mpost(server, "tools/call", {"name": "captureCardNumber", "arguments": {"callSid": call_a}}, token=reader)
        error_reply(response, 403, schema_book(MODERN), id=1)
        value = challenge(response)
        assert value.startswith(STEP_UP + ", ") and 'resource_metadata="' in value, value
        assert "eyJ" not in server.stderr_text(), "tokens never appear in logs"


# ---------------------------------------------------------------------------------------------
# (iii) Scopes: tools/list filtered, step-up 403, charging needs payments:charge


async def test_scopes_filter_tools_and_a_missing_one_is_a_step_up(modern_schema, legacy_schema):
    full, reader, taker = secret(), secret(), secret()
    env = {"AGENT_PAYMENTS_HTTP_TOKENS": f"full:{full}, reader:{reader}:payments:read, taker:{taker}:payments:read payments:capture"}
    with anyio.fail_after(30), http_server(env) as server:
        def listed(token: str) -> set[str]:
            response = mpost(server, "tools/list", token=token)
            assert response.status_code == 200, describe(response)
            modern_schema.check_result("ListToolsResult", response.json(), "ListToolsResultResponse")
            assert response.json()["result"]["cacheScope"] == "private", response.json()["result"]
            return {tool["name"] for tool in response.json()["result"]["tools"]}

        assert listed(reader) == {"getPaymentStatus"}
        assert listed(taker) == listed(full) == CAPTURE_TOOLS | {"getPaymentStatus"}

        # The read-only token: every capturing tool is 403 with the step-up challenge, in both eras.
        call_sid = new_call()
        session = legacy_session(server, legacy_schema, token=reader)
        for index, tool in enumerate(sorted(CAPTURE_TOOLS)):
            response = mpost(server, "tools/call", {"name": tool, "arguments": {"callSid": call_sid}}, token=reader, id=index)
            error_reply(response, 403, modern_schema, id=index)
            assert response.headers.get("www-authenticate") == STEP_UP, (tool, describe(response))
            response = post(server, legacy_request("tools/call", {"name": tool, "arguments": {"callSid": call_sid}}, id=index),
                            legacy_headers(session, token=reader))
            error_reply(response, 403, legacy_schema, id=index)
            assert response.headers.get("www-authenticate") == STEP_UP, (tool, describe(response))
        response = mpost(server, "tools/call", {"name": "getPaymentStatus", "arguments": {"callSid": call_sid}}, token=reader)
        assert response.status_code == 200, describe(response)

        # Capturing without payments:charge: tokenizing is fine, charging is a tool refusal naming the scope.
        charged = mpost(server, "tools/call", {"name": "startPaymentCapture", "arguments": {"callSid": call_sid, "chargeAmount": "10.00"}},
                        token=taker)
        assert charged.status_code == 200, describe(charged)
        result = reply_of(charged)[1]["result"]
        assert result["isError"] and result["structuredContent"]["error"]["reason"] == "insufficient-scope", result
        assert "payments:charge" in result["structuredContent"]["error"]["message"], result
        assert "payments:charge" in json.dumps(result["structuredContent"]["error"]), result
        response = httpx2.put(f"{server.base}/calls/{call_sid}/amount-due", json={"amount": "10.00", "currency": "USD"},
                              headers={"Authorization": f"Bearer {taker}"}, timeout=TIMEOUT)
        assert response.status_code == 403, describe(response)
        tokenized = mpost(server, "tools/call", {"name": "startPaymentCapture", "arguments": {"callSid": call_sid}}, token=taker)
        result = reply_of(tokenized)[1]["result"]
        assert not result.get("isError") and result["structuredContent"].get("chargeAmount") is None, result

        # Through the official SDK: the read-only token lists one tool and is refused the others.
        async with sdk_principal(server, reader, "reader (SDK)", MODERN) as sdk:
            tools = await sdk.client.list_tools(cache_mode="bypass")
            assert {tool.name for tool in tools.tools} == {"getPaymentStatus"}
            with pytest.raises(MCPError) as refused:
                await sdk.client.call_tool("captureCardNumber", {"callSid": call_sid})
            assert "payments:capture" in refused.value.message, refused.value


# ---------------------------------------------------------------------------------------------
# (iv) The spending policy, and amounts due


def start_raw(server: RunningServer, token: str, call_sid: str, **options) -> dict:
    response = mpost(server, "tools/call", {"name": "startPaymentCapture", "arguments": {"callSid": call_sid, **options}}, token=token)
    assert response.status_code == 200, describe(response)
    return reply_of(response)[1]["result"]


def refusal(result: dict, expected: str, *words: str) -> None:
    """A tool refusal with reason `expected`, whose message says each of `words`."""
    assert result.get("isError") and result["structuredContent"]["error"]["reason"] == expected, result
    for word in words:
        assert word in result["structuredContent"]["error"]["message"], (word, result)


def nothing_started(server: RunningServer, token: str, call_sid: str) -> None:
    response = mpost(server, "tools/call", {"name": "getPaymentStatus", "arguments": {"callSid": call_sid}}, token=token)
    result = reply_of(response)[1]["result"]
    assert result.get("isError") and result["structuredContent"]["error"]["reason"] == "no-session", f"a refused start starts nothing: {result}"


def test_the_spending_policy_bounds_each_charge_and_each_principals_day():
    alice, bob = secret(), secret()
    env = {"AGENT_PAYMENTS_HTTP_TOKENS": f"alice:{alice}, bob:{bob}", "AGENT_PAYMENTS_MAX_CHARGE": "100",
           "AGENT_PAYMENTS_CURRENCIES": "USD,EUR", "AGENT_PAYMENTS_DAILY_LIMIT": "150"}
    with http_server(env) as server:
        call_sid = new_call()
        refusal(start_raw(server, alice, call_sid, chargeAmount="500", currency="USD"), "charge-over-maximum", "500", "100")
        refusal(start_raw(server, alice, call_sid, chargeAmount="10", currency="GBP"), "currency-not-allowed", "GBP", "USD", "EUR")
        nothing_started(server, alice, call_sid)

        # 90 + 90 USD passes 150 a day; 90 + 50 does not; EUR is counted apart; Bob has his own day.
        first = start_raw(server, alice, new_call(), chargeAmount="90", currency="USD")
        assert not first.get("isError") and first["structuredContent"]["chargeAmount"] in ("90", "90.00"), first
        second = new_call()
        refusal(start_raw(server, alice, second, chargeAmount="90", currency="USD"), "daily-limit-reached", "150")
        nothing_started(server, alice, second)
        assert not start_raw(server, alice, second, chargeAmount="50", currency="USD").get("isError")
        refusal(start_raw(server, alice, new_call(), chargeAmount="10.01", currency="USD"), "daily-limit-reached", "150")
        assert not start_raw(server, alice, new_call(), chargeAmount="90", currency="EUR").get("isError")
        assert not start_raw(server, bob, new_call(), chargeAmount="90", currency="USD").get("isError"), "bob's day is his own"
        refusal(start_raw(server, bob, new_call(), chargeAmount="61", currency="USD"), "daily-limit-reached", "150")

        # The backend cannot register what the policy refuses either: 422 naming the limit.
        response = httpx2.put(f"{server.base}/calls/{new_call()}/amount-due", json={"amount": "500", "currency": "USD"},
                              headers={"Authorization": f"Bearer {bob}"}, timeout=TIMEOUT)
        assert response.status_code == 422 and response.json()["error"] == "charge-over-maximum", describe(response)


async def test_an_amount_due_registered_by_the_backend_is_what_the_agent_charges():
    backend, agent, reader, mallory = secret(), secret(), secret(), secret()
    call_sid = new_call()
    # The shop's backend and its agent share a tenant: the backend's amount due fixes the agent's
    # charge. Mallory, of another tenant, can neither see nor change it.
    env = {"AGENT_PAYMENTS_HTTP_TOKENS": f"backend@shop:{backend}, agent@shop:{agent}, reader@shop:{reader}:payments:read, mallory@evil:{mallory}",
           "AGENT_PAYMENTS_REQUIRE_AMOUNT_DUE": "true"}
    with anyio.fail_after(30), http_server(env, scripts={call_sid: {"payment-card-number": ["4242424242424242"]}}) as server:
        def due(method: str, call: str, token: str | None, body: dict | None = None):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx2.request(method, f"{server.base}/calls/{call}/amount-due", json=body, headers=headers, timeout=TIMEOUT)

        amount = {"amount": "49.90", "currency": "EUR", "expiresInSeconds": 600}
        assert due("PUT", call_sid, None, amount).status_code == 401
        assert due("PUT", call_sid, secret(), amount).status_code == 401
        assert due("PUT", call_sid, reader, amount).status_code == 403
        assert due("GET", call_sid, reader).status_code == 403
        assert due("PUT", call_sid, backend, {"amount": "forty", "currency": "EUR"}).status_code == 400
        assert due("PUT", "CA-not-a-call", backend, amount).status_code == 400
        assert due("GET", call_sid, backend).status_code == 404
        response = due("PUT", call_sid, backend, amount)
        assert response.status_code == 204, describe(response)
        response = due("GET", call_sid, agent)
        assert response.status_code == 200, describe(response)
        body = response.json()
        assert (body["amount"], body["currency"]) == ("49.90", "EUR"), body
        expires = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
        assert 300 < (expires - datetime.now(timezone.utc)).total_seconds() <= 600, body

        # Another tenant's amount due is none of Mallory's business: not shown, not replaced, not withdrawn.
        assert due("GET", call_sid, mallory).status_code == 404
        response = due("PUT", call_sid, mallory, {"amount": "1.00", "currency": "EUR"})
        assert response.status_code == 409 and response.json()["error"] == "call_busy", describe(response)
        assert due("DELETE", call_sid, mallory).status_code == 404
        assert due("GET", call_sid, agent).json()["amount"] == "49.90", "unchanged"
        # And what Mallory registers first on a call fixes nothing for the shop, which is told.
        planted = new_call()
        assert due("PUT", planted, mallory, {"amount": "1.00", "currency": "EUR"}).status_code == 204
        tokenized = start_raw(server, agent, planted)
        assert not tokenized.get("isError") and tokenized["structuredContent"].get("chargeAmount") in (None, "0"), \
            f"mallory's amount is not charged: {tokenized}"
        assert due("GET", planted, agent).status_code == 404
        assert due("PUT", planted, backend, amount).status_code == 409

        # Another amount, or another currency, is refused; without an amount due nothing is charged.
        refusal(start_raw(server, agent, call_sid, chargeAmount=5000), "amount-differs-from-amount-due", "49.90")
        refusal(start_raw(server, agent, call_sid, chargeAmount="49.90", currency="USD"), "amount-differs-from-amount-due", "49.90")
        elsewhere = new_call()
        refusal(start_raw(server, agent, elsewhere, chargeAmount="10"), "amount-due-required")
        nothing_started(server, agent, elsewhere)

        # Without chargeAmount the amount due is charged, start to completion, through the SDK.
        async with sdk_principal(server, agent, "agent (SDK)", MODERN) as sdk:
            status = await call(sdk.client, "startPaymentCapture", callSid=call_sid)
            assert (status["chargeAmount"], status["currency"]) == ("49.90", "EUR"), status
            for _ in range(10):
                tool = status["nextStep"].get("tool")
                if tool not in ("captureCardNumber", "captureSecurityCode", "captureExpirationDate", "capturePostalCode",
                                "completePaymentCapture"):
                    break
                status = await settle(sdk.client, await call(sdk.client, tool, callSid=call_sid, paymentSid=status["paymentSid"]))
            assert status["phase"] == "completed" and status["result"] == "success", status
            assert (status["chargeAmount"], status["currency"]) == ("49.90", "EUR"), status
        assert due("GET", call_sid, backend).status_code == 404, "a payment that charged it used it up"

        # DELETE withdraws one; one that expires is gone by itself.
        other = new_call()
        assert due("PUT", other, backend, amount).status_code == 204
        assert due("DELETE", other, backend).status_code == 204
        assert due("GET", other, backend).status_code == 404
        assert due("PUT", other, backend, {**amount, "expiresInSeconds": 1}).status_code == 204
        deadline = time.monotonic() + 10
        while due("GET", other, backend).status_code == 200:
            assert time.monotonic() < deadline, "an amount due outlived its expiry by 10 s"
            time.sleep(0.1)  # polling a condition with a deadline, not ordering
        assert due("GET", other, backend).status_code == 404


# ---------------------------------------------------------------------------------------------
# (v) Closed by default


LIVE_CREDENTIALS = ["AC" + "0" * 32, "SK" + "0" * 32, "not-a-real-secret"]


def refused_start(argv: list[str], env: dict) -> str:
    """Runs agent-payments expecting it to refuse to start; answers its standard error."""
    try:
        out = subprocess.run([str(SERVER), *argv], env={**clean_env(), **env}, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=REFUSAL_SECONDS)
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(f"still running after {REFUSAL_SECONDS} s, so it did not refuse: {expired.stderr}") from None
    assert out.returncode != 0, f"started (exit {out.returncode}):\n{out.stderr}"
    assert out.stdout == "", out.stdout
    for name in ("AGENT_PAYMENTS_HTTP_TOKENS", "AGENT_PAYMENTS_OAUTH_ISSUER", "--allow-unauthenticated"):
        assert name in out.stderr, (name, out.stderr)
    return out.stderr


@contextmanager
def fake_ngrok():
    """A directory for PATH holding an `ngrok` that only records that it was started."""
    with tempfile.TemporaryDirectory() as directory:
        marker = Path(directory) / "started"
        script = Path(directory) / "ngrok"
        script.write_text(f"#!/bin/sh\ntouch {marker}\nsleep 30\n")
        script.chmod(0o755)
        yield directory, marker


@pytest.mark.parametrize("listen,names", [
    ("0.0.0.0:0", "--http binds 0.0.0.0"),
    ("127.evil.example:0", "--http binds 127.evil.example"),
    ("[::]:0", "--http binds ::"),
])
def test_an_exposed_bind_without_authentication_refuses_to_start(listen, names):
    stderr = refused_start(["--simulate", "--http", listen], {})
    assert names in stderr, stderr


@pytest.mark.parametrize("exposure,names", [
    ({"CALLBACK_BASE_URL": "https://pay.example"}, "CALLBACK_BASE_URL https://pay.example"),
    ({"CALLBACK_BASE_URL": "https://127.0.0.1.nip.io"}, "CALLBACK_BASE_URL"),
    ({"NGROK_AUTH_TOKEN": "fake-ngrok-token"}, "NGROK_AUTH_TOKEN"),
])
def test_a_public_url_or_tunnel_to_a_loopback_listener_without_authentication_refuses_to_start(exposure, names):
    with fake_ngrok() as (directory, marker):
        env = {**exposure, "PATH": f"{directory}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               "TWILIO_API_BASE_URL": "http://127.0.0.1:9"}  # never reached: it refuses before anything
        stderr = refused_start([*LIVE_CREDENTIALS, "--http", "127.0.0.1:0"], env)
        assert names in stderr, stderr
        assert not marker.exists(), "no tunnel is opened for a server that refuses to start"
        assert "fake-ngrok-token" not in stderr and "not-a-real-secret" not in stderr


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "127.0.0.2:0", "[::1]:0", "localhost:0"])
def test_a_loopback_bind_starts_without_authentication(listen):
    if listen.startswith("[::1]") and not ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    with http_server(listen=listen) as server:
        response = mpost(server, "server/discover")
        assert response.status_code == 200, describe(response)
        assert "WARNING" not in server.stderr_text()


def test_allow_unauthenticated_starts_anyway_and_says_so_loudly():
    with http_server(args=("--allow-unauthenticated",), listen="0.0.0.0:0") as server:
        assert mpost(server, "server/discover").status_code == 200
        warning = [line for line in server.lines if "WARNING" in line and "WITHOUT authentication" in line]
        assert warning and "--http binds 0.0.0.0" in warning[0], server.stderr_text()
    # Live, behind a public URL: the warning names it.
    env = {**clean_env(), "CALLBACK_BASE_URL": "https://pay.example", "TWILIO_API_BASE_URL": "http://127.0.0.1:9"}
    server = RunningServer([str(SERVER), *LIVE_CREDENTIALS, "--http", "127.0.0.1:0", "--allow-unauthenticated"], env)
    try:
        server.wait_for_line(ENDPOINT, 20)
        found = server.wait_for_line(re.compile(r"WARNING.*WITHOUT authentication"), 5)
        assert "CALLBACK_BASE_URL" in found.string, found.string
    except BaseException:
        server.abort()
        raise
    assert server.stop() == 0, server.stderr_text()
    # With tokens, an exposed bind starts quietly.
    with http_server({"AGENT_PAYMENTS_HTTP_TOKENS": secret()}, listen="0.0.0.0:0") as server:
        assert mpost(server, "server/discover").status_code == 401
        assert "WARNING" not in server.stderr_text()


# ---------------------------------------------------------------------------------------------
# (vi) Rate limits


def retry_after(response) -> int:
    assert response.status_code == 429, describe(response)
    value = response.headers.get("retry-after", "")
    assert value.isdigit() and int(value) >= 1, f"429 carries Retry-After in whole seconds: {describe(response)}"
    return int(value)


def tool_call(server: RunningServer, token: str, id=1, client: httpx2.Client | None = None):
    body = modern_request("tools/call", {"name": "getPaymentStatus", "arguments": {"paymentSid": ghost_sid()}}, id=id)
    headers = modern_headers(body, token=token)
    if client is not None:
        return client.post(server.mcp, content=json.dumps(body).encode(), headers=headers)
    return post(server, body, headers)


@contextmanager
def from_address(address: str):
    """An HTTP client whose connections come from `address` (another loopback address)."""
    with httpx2.Client(transport=httpx2.HTTPTransport(local_address=address), timeout=TIMEOUT) as client:
        yield client


def test_tool_calls_are_rate_limited_per_principal(modern_schema):
    alice, bob = secret(), secret()
    # 6 a minute: bursts of one.
    with http_server({"AGENT_PAYMENTS_HTTP_TOKENS": f"alice:{alice}, bob:{bob}", "AGENT_PAYMENTS_RATE_TOOL_CALLS": "6"}) as server:
        assert tool_call(server, alice).status_code == 200
        response = tool_call(server, alice, id="again")
        retry_after(response)
        error_reply(response, 429, modern_schema, id="again")
        assert "tool calls a minute" in response.json()["error"]["message"], response.json()
        assert tool_call(server, bob).status_code == 200, "another principal has its own allowance"
        assert mpost(server, "tools/list", token=alice).status_code == 200, "only tool calls are counted"


def test_tool_calls_are_rate_limited_per_address(modern_schema):
    alice, bob = secret(), secret()
    env = {"AGENT_PAYMENTS_HTTP_TOKENS": f"alice:{alice}, bob:{bob}", "AGENT_PAYMENTS_RATE_TOOL_CALLS_PER_ADDRESS": "6"}
    with http_server(env) as server:
        assert tool_call(server, alice).status_code == 200
        response = tool_call(server, bob)
        retry_after(response)
        error_reply(response, 429, modern_schema)
        assert "this address" in response.json()["error"]["message"], response.json()
        with from_address("127.0.0.2") as elsewhere:
            assert tool_call(server, bob, client=elsewhere).status_code == 200, "another address has its own allowance"


def test_refused_authentications_shut_out_the_address(modern_schema):
    good = secret()
    with http_server({"AGENT_PAYMENTS_HTTP_TOKENS": f"agent:{good}", "AGENT_PAYMENTS_RATE_AUTH_FAILURES": "6"}) as server:
        assert mpost(server, "server/discover", token=good).status_code == 200
        error_reply(mpost(server, "server/discover", token=secret()), 401, modern_schema)
        # The address's allowance of refusals is spent: even the good token is not judged now.
        response = mpost(server, "server/discover", token=good)
        retry_after(response)
        error_reply(response, 429, modern_schema)
        response = httpx2.get(f"{server.base}/calls/{new_call()}/amount-due", headers={"Authorization": f"Bearer {good}"}, timeout=TIMEOUT)
        retry_after(response)
        with from_address("127.0.0.2") as elsewhere:
            body = modern_request("server/discover")
            response = elsewhere.post(server.mcp, content=json.dumps(body).encode(), headers=modern_headers(body, token=good))
            assert response.status_code == 200, f"another address is heard: {describe(response)}"
        assert good not in server.stderr_text()


def test_legacy_sessions_are_capped_per_principal(legacy_schema):
    alice, bob = secret(), secret()
    env = {"AGENT_PAYMENTS_HTTP_TOKENS": f"alice:{alice}, bob:{bob}", "AGENT_PAYMENTS_HTTP_MAX_SESSIONS_PER_CLIENT": "2"}
    with http_server(env) as server:
        legacy_session(server, legacy_schema, token=alice)
        legacy_session(server, legacy_schema, token=alice)
        initialize = legacy_request("initialize", {"protocolVersion": LEGACY, "capabilities": {},
                                                   "clientInfo": {"name": "raw-http", "version": "1"}}, id=0)
        response = post(server, initialize, legacy_headers(version=None, token=alice))
        retry_after(response)
        error_reply(response, 429, legacy_schema)
        assert "mcp-session-id" not in response.headers, response.headers
        legacy_session(server, legacy_schema, token=bob)
