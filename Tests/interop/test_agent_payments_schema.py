"""The shipped agent-payments binary (in --simulate mode) against the MCP JSON schemas: a raw
stdio session in each era in which every reply and every notification the server sends is
validated against the definition of its revision. test_wire.py does the same for the MCPCore
fixture server; this proves the real server's tools, resources, prompts, completions and
refusals are well-formed too, not only the engine underneath them."""

from __future__ import annotations

import json
import secrets

import pytest
from jsonschema import Draft202012Validator

from conftest import BIN, SchemaBook, modern

SERVER = BIN / "agent-payments"
ENV = {"AGENT_PAYMENTS_SIMULATOR_PACING_MS": "0", "AGENT_PAYMENTS_LOG_LEVEL": "warning"}
STATUS_TEMPLATE = "payment://{callSid}/{paymentSid}/status"

# The 2026-07-28 schema defines a response envelope per method; these are its names (checked
# to exist by SchemaBook.check). Methods it has none for use the generic JSONRPCResultResponse.
MODERN_ENVELOPES = {
    "server/discover": "DiscoverResultResponse",
    "tools/list": "ListToolsResultResponse",
    "tools/call": "CallToolResultResponse",
    "resources/list": "ListResourcesResultResponse",
    "resources/templates/list": "ListResourceTemplatesResultResponse",
    "resources/read": "ReadResourceResultResponse",
    "prompts/list": "ListPromptsResultResponse",
    "prompts/get": "GetPromptResultResponse",
    "completion/complete": "CompleteResultResponse",
}


def new_call() -> str:
    return "CA" + secrets.token_hex(16)


class Session:
    """One raw session: numbered requests, every reply checked against the schema, and every
    notification that arrives in between checked against its definition and kept."""

    def __init__(self, client, book: SchemaBook, era: str):
        self.client, self.book, self.era = client, book, era
        self.next_id = 1
        self.notifications: list[tuple[str, dict]] = []
        self.replies = 0
        self.output_schemas: dict[str, dict] = {}
        self.streams: set = set()  # open subscriptions/listen requests (2026-07-28)

    @property
    def is_modern(self) -> bool:
        return self.era == "2026-07-28"

    def absorb(self, message: dict) -> None:
        assert "method" in message and "id" not in message, f"the server sent something unasked for: {message}"
        definition = self.book.check_notification(message)
        if self.is_modern and message["method"] not in ("notifications/message", "notifications/progress"):
            # 2026-07-28: a notification delivered on a subscriptions/listen stream MUST name it.
            stream = message.get("params", {}).get("_meta", {}).get("io.modelcontextprotocol/subscriptionId")
            assert stream in self.streams, f"{definition} names no open stream: {message}"
        self.notifications.append((definition, message))

    def send(self, method: str, params: dict | None = None, id=None, **meta) -> object:
        if id is None:
            id, self.next_id = self.next_id, self.next_id + 1
        if self.is_modern:
            params = modern(params, **meta)
        message = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            message["params"] = params
        self.client.send(message)
        return id

    def request(self, method: str, params: dict | None = None, **meta) -> dict:
        id = self.send(method, params, **meta)
        before, reply = self.client.read_until_response(id)
        for message in before:
            self.absorb(message)
        self.replies += 1
        return reply

    def ok(self, definition: str, method: str, params: dict | None = None, **meta) -> dict:
        reply = self.request(method, params, **meta)
        envelope = MODERN_ENVELOPES.get(method, "JSONRPCResultResponse") if self.is_modern else "JSONRPCResultResponse"
        self.book.check_result(definition, reply, envelope)
        if self.is_modern:
            assert reply["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "agent-payments"
        return reply["result"]

    def error(self, method: str, params: dict | None, definition: str, **meta) -> dict:
        reply = self.request(method, params, **meta)
        self.book.check_error(reply, definition)
        return reply["error"]

    def tool(self, name: str, arguments: dict, **meta) -> dict:
        """A tools/call; its structuredContent, refusals included, must also meet the tool's
        outputSchema, and be the one text block's JSON."""
        result = self.ok("CallToolResult", "tools/call", {"name": name, "arguments": arguments}, **meta)
        if name in self.output_schemas:
            assert len(result["content"]) == 1 and json.loads(result["content"][0]["text"]) == result["structuredContent"]
            problems = [f"{list(e.absolute_path)}: {e.message}" for e in
                        Draft202012Validator(self.output_schemas[name]).iter_errors(result.get("structuredContent"))]
            assert not problems, (name, problems)
        return result

    def await_notification(self, predicate, timeout: float = 10.0) -> dict:
        """The first notification (already seen or still to come) that satisfies `predicate`;
        the timeout only bounds a hang."""
        for _, message in self.notifications:
            if predicate(message):
                return message
        while True:
            message = self.client.read(timeout=timeout)
            self.absorb(message)
            if predicate(message):
                return message


def run_session(session: Session) -> None:
    call = new_call()
    tool_meta = {"io.modelcontextprotocol/logLevel": "debug"} if session.is_modern else {}

    # Opening.
    if session.is_modern:
        discovered = session.ok("DiscoverResult", "server/discover")
        assert "2026-07-28" in discovered["supportedVersions"]
        capabilities = discovered["capabilities"]
        # One stream for the list changes; resource updates get their own once a URI exists.
        lists = session.send("subscriptions/listen", {"notifications": {
            "toolsListChanged": True, "promptsListChanged": True, "resourcesListChanged": True}}, id="lists")
        session.streams.add(lists)
        ack = session.await_notification(lambda m: m["method"] == "notifications/subscriptions/acknowledged"
                                         and m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == lists)
        assert ack["params"]["notifications"].get("resourcesListChanged") is True
    else:
        reply = session.client.request(0, "initialize", {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "schema", "version": "1"}})
        session.book.check_result("InitializeResult", reply)
        session.replies += 1
        assert reply["result"]["protocolVersion"] == "2025-11-25"
        assert reply["result"]["serverInfo"]["name"] == "agent-payments"
        capabilities = reply["result"]["capabilities"]
        session.client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        session.ok("EmptyResult", "logging/setLevel", {"level": "debug"})
    assert {"tools", "resources", "prompts", "completions"} <= set(capabilities)

    # Listings before any payment exists.
    tools = session.ok("ListToolsResult", "tools/list")["tools"]
    session.output_schemas = {t["name"]: t["outputSchema"] for t in tools if "outputSchema" in t}
    assert {"startPaymentCapture", "getPaymentStatus", "completePaymentCapture"} <= {t["name"] for t in tools}
    templates = session.ok("ListResourceTemplatesResult", "resources/templates/list")["resourceTemplates"]
    assert STATUS_TEMPLATE in [t["uriTemplate"] for t in templates]
    session.ok("ListResourcesResult", "resources/list")
    prompts = session.ok("ListPromptsResult", "prompts/list")["prompts"]
    assert "StartCapture" in [p["name"] for p in prompts]
    for prompt in prompts:
        got = session.ok("GetPromptResult", "prompts/get", {"name": prompt["name"], "arguments": {"callSid": call}})
        assert got["messages"], prompt["name"]

    # A payment session.
    started = session.tool("startPaymentCapture", {"callSid": call}, **tool_meta)
    assert not started.get("isError"), started
    payment = started["structuredContent"]["paymentSid"]
    uri = STATUS_TEMPLATE.replace("{callSid}", call).replace("{paymentSid}", payment)
    if session.is_modern:
        updates = session.send("subscriptions/listen", {"notifications": {"resourceSubscriptions": [uri]}}, id="updates")
        session.streams.add(updates)
        ack = session.await_notification(lambda m: m["method"] == "notifications/subscriptions/acknowledged"
                                         and m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == updates)
        assert ack["params"]["notifications"]["resourceSubscriptions"] == [uri]
    else:
        session.ok("EmptyResult", "resources/subscribe", {"uri": uri})

    listed = session.ok("ListResourcesResult", "resources/list")["resources"]
    assert uri in [r["uri"] for r in listed]
    for prompt in prompts:
        session.ok("GetPromptResult", "prompts/get", {"name": prompt["name"], "arguments": {"callSid": call, "paymentSid": payment}})

    template_ref = {"type": "ref/resource", "uri": STATUS_TEMPLATE}
    prompt_ref = {"type": "ref/prompt", "name": "StartCapture"}
    for ref in (template_ref, prompt_ref):
        completed = session.ok("CompleteResult", "completion/complete", {
            "ref": ref, "argument": {"name": "callSid", "value": call[:8]}})
        assert call in completed["completion"]["values"]
        completed = session.ok("CompleteResult", "completion/complete", {
            "ref": ref, "argument": {"name": "paymentSid", "value": ""}, "context": {"arguments": {"callSid": call}}})
        assert completed["completion"]["values"] == [payment]

    status = session.tool("getPaymentStatus", {"paymentSid": payment}, **tool_meta)
    assert not status.get("isError") and status["structuredContent"]["paymentSid"] == payment
    read = session.ok("ReadResourceResult", "resources/read", {"uri": uri})
    assert read["contents"][0]["uri"] == uri
    assert json.loads(read["contents"][0]["text"])["paymentSid"] == payment

    # Errors and refusals.
    not_found = session.error("payments/teleport", {}, "MethodNotFoundError" if session.is_modern else "Error")
    assert not_found["code"] == -32601
    invalid = session.tool("startPaymentCapture", {"callSid": "CA123"}, **tool_meta)
    assert invalid.get("isError") is True and "callSid" in invalid["content"][0]["text"]
    assert invalid["structuredContent"]["error"]["reason"] == "invalid-arguments"
    refused = session.tool("completePaymentCapture", {"callSid": call, "paymentSid": payment}, **tool_meta)
    assert refused.get("isError") is True, refused
    assert refused["structuredContent"]["error"]["reason"] == "items-missing"

    # Ending the session changes its status: the subscriber is told.
    cancelled = session.tool("cancelPaymentCapture", {"callSid": call, "paymentSid": payment}, **tool_meta)
    assert not cancelled.get("isError"), cancelled
    update = session.await_notification(lambda m: m["method"] == "notifications/resources/updated" and m["params"]["uri"] == uri)
    if session.is_modern:
        assert update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == updates
        # Ending a stream is a cancellation; nothing may answer it.
        for stream in (lists, updates):
            session.client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": stream}})
    # A last request; everything the server sent before its answer has been validated.
    session.ok("ListResourcesResult", "resources/list")


@pytest.mark.parametrize("era", ["2025-11-25", "2026-07-28"])
def test_every_agent_payments_message_matches_its_schema(wire, era, legacy_schema, modern_schema):
    book = modern_schema if era == "2026-07-28" else legacy_schema
    client = wire("--simulate", binary=SERVER, env=ENV)
    session = Session(client, book, era)
    try:
        run_session(session)
    except BaseException:
        print(client.stderr_text()[-4000:])
        raise
    # Starting and ending a session changes the resource list, and the subscriber was told of
    # the cancellation: both kinds were sent, so both were validated above.
    seen = {definition for definition, _ in session.notifications}
    assert {"ResourceUpdatedNotification", "ResourceListChangedNotification"} <= seen, seen
    assert session.replies >= 30
