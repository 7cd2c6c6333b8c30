"""Raw newline-delimited JSON-RPC probes against the MCPCore fixture server: error paths the
SDK never produces, exact id echoing, era rules, and every reply checked against the MCP JSON
schemas of its revision."""

from __future__ import annotations

import json

from conftest import MODERN_META, modern


def test_parse_error_answers_with_null_id(wire):
    client = wire()
    client.send_raw(b'{"jsonrpc": "2.0", "id": 1, "method": \n')
    reply = client.read()
    assert reply["id"] is None and reply["error"]["code"] == -32700
    client.send_raw(b"\xff\xfe not utf8\n")
    assert client.read()["error"]["code"] == -32700


def test_batches_are_rejected(wire):
    client = wire()
    client.initialize()
    client.send([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
    reply = client.read()
    assert reply["id"] is None and reply["error"]["code"] == -32600
    assert "batch" in reply["error"]["message"]


def test_invalid_requests(wire):
    client = wire()
    client.initialize()
    assert client.request(1, "ping") == {"jsonrpc": "2.0", "id": 1, "result": {}}
    client.send({"jsonrpc": "1.0", "id": 2, "method": "ping"})
    assert client.read()["error"]["code"] == -32600
    client.send({"jsonrpc": "2.0", "id": None, "method": "ping"})
    reply = client.read()
    assert reply["error"]["code"] == -32600 and reply["id"] is None
    client.send({"jsonrpc": "2.0", "id": 3, "method": 7})
    assert client.read() == {"jsonrpc": "2.0", "id": 3, "error": {"code": -32600, "message": "Invalid request: \"method\" must be a string"}}
    client.send({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": [1, 2]})
    assert client.read()["error"]["code"] == -32602
    reply = client.request(5, "no/such/method")
    assert reply["error"]["code"] == -32601 and "no/such/method" in reply["error"]["message"]
    reply = client.request(6, "tools/call", {"arguments": {}})
    assert reply["error"]["code"] == -32602 and "name" in reply["error"]["message"]
    reply = client.request(7, "logging/setLevel", {"level": "loud"})
    assert reply["error"]["code"] == -32602 and "warning" in reply["error"]["message"]


def test_unknown_fields_are_tolerated(wire):
    client = wire()
    client.initialize()
    client.send({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"extra": True}, "futureField": [1]})
    assert client.read() == {"jsonrpc": "2.0", "id": 1, "result": {}}


def test_ids_are_echoed_exactly(wire):
    client = wire()
    client.initialize()
    for request_id in ["abc", "", "ünï", 0, -5, 9007199254740993, 2**63 - 1]:
        assert client.request(request_id, "ping")["id"] == request_id


def test_requests_before_initialize_are_refused_clearly(wire):
    client = wire()
    reply = client.request(1, "tools/list")
    assert reply["error"]["code"] == -32600
    assert "initialize" in reply["error"]["message"] and "2026-07-28" in reply["error"]["message"]
    # ping is allowed before initialize, and the refusal did not decide the era.
    assert client.request(2, "ping")["result"] == {}
    assert client.initialize()["result"]["protocolVersion"] == "2025-11-25"


def test_version_negotiation(wire):
    for offered, answered in [("2024-11-05", "2024-11-05"), ("2025-03-26", "2025-03-26"),
                              ("2025-06-18", "2025-06-18"), ("2025-11-25", "2025-11-25"),
                              ("1999-01-01", "2025-11-25"), ("2026-07-28", "2025-11-25")]:
        client = wire()
        assert client.initialize(offered)["result"]["protocolVersion"] == answered


def test_initialize_twice_is_refused(wire):
    client = wire()
    client.initialize()
    reply = client.request(9, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                             "clientInfo": {"name": "x", "version": "1"}})
    assert reply["error"]["code"] == -32600


def test_real_client_initialize_with_object_experimental_capabilities(wire):
    client = wire()
    reply = client.request(1, "initialize", {
        "protocolVersion": "2025-06-18",
        "capabilities": {"experimental": {"claude.ai": {"features": {"x": True}}}, "roots": {"listChanged": True},
                         "sampling": {}, "elicitation": {"form": {}}},
        "clientInfo": {"name": "claude-ai", "version": "0.1.0"}})
    assert reply["result"]["protocolVersion"] == "2025-06-18"


def test_modern_errors(wire):
    client = wire()
    reply = client.request(1, "server/discover", modern(**{"io.modelcontextprotocol/protocolVersion": "2099-01-01"}))
    assert reply["error"]["code"] == -32022
    assert reply["error"]["data"]["requested"] == "2099-01-01"
    assert "2026-07-28" in reply["error"]["data"]["supported"] and "2025-11-25" in reply["error"]["data"]["supported"]

    meta = dict(MODERN_META)
    del meta["io.modelcontextprotocol/clientCapabilities"]
    reply = client.request(2, "tools/list", {"_meta": meta})
    assert reply["error"]["code"] == -32602 and "clientCapabilities" in reply["error"]["message"]

    assert "result" in client.request(3, "server/discover", modern())
    reply = client.request(4, "ping", modern())
    assert reply["error"]["code"] == -32601 and "2026-07-28" in reply["error"]["message"]
    reply = client.request(5, "logging/setLevel", modern({"level": "debug"}))
    assert reply["error"]["code"] == -32601
    reply = client.request(6, "resources/subscribe", modern({"uri": "demo://readme"}))
    assert reply["error"]["code"] == -32601
    reply = client.request(7, "tools/list", modern(**{"io.modelcontextprotocol/logLevel": "chatty"}))
    assert reply["error"]["code"] == -32602
    # The connection is modern now: initialize answers with the modern-only version list.
    reply = client.request(8, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                             "clientInfo": {"name": "x", "version": "1"}})
    assert reply["error"]["code"] == -32022 and reply["error"]["data"]["supported"] == ["2026-07-28"]
    reply = client.request(9, "tools/list", {})
    assert reply["error"]["code"] == -32602


def test_legacy_connection_refuses_modern_methods(wire):
    client = wire()
    client.initialize()
    reply = client.request(1, "server/discover", modern())
    assert reply["error"]["code"] == -32601


def test_duplicate_id_in_flight_is_refused(wire):
    client = wire()
    client.initialize()
    client.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "slow", "arguments": {"seconds": 0.3, "steps": 1}}})
    client.send({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    first = client.read()
    assert first["id"] == 1 and first["error"]["code"] == -32600
    second = client.read()
    assert second["id"] == 1 and second["result"]["content"][0]["text"] == "done after 1 steps"


def test_cancellation_suppresses_the_response(wire):
    client = wire()
    client.initialize()
    # The doomed call: ten steps of 0.1 s, a progress notification after each.
    client.send({"jsonrpc": "2.0", "id": "long", "method": "tools/call",
                 "params": {"name": "slow", "arguments": {"seconds": 1.0, "steps": 10}, "_meta": {"progressToken": "t"}}})
    # Its first progress notification proves the handler is running (no sleep to order it).
    while True:
        message = client.read(timeout=10)
        if message.get("method") == "notifications/progress" and message["params"]["progressToken"] == "t":
            break
        assert "id" not in message, message
    client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "long", "reason": "test"}})
    client.send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
    # The marker: the same tool with the same step length, started a step later with twice as
    # many steps. Had the server ignored the cancellation, the doomed call would have finished,
    # and its response been written, about a second before this one's; had it answered the
    # cancellation with an error, that would have come at once.
    client.send({"jsonrpc": "2.0", "id": "marker", "method": "tools/call",
                 "params": {"name": "slow", "arguments": {"seconds": 2.0, "steps": 20}}})
    before, marker = client.read_until_response("marker", timeout=15)
    assert marker["result"]["content"][0]["text"] == "done after 20 steps"
    assert [m for m in before if m.get("id") == "long"] == [], "a cancelled request was answered"
    assert [m for m in before if "id" in m] == [{"jsonrpc": "2.0", "id": 2, "result": {}}]
    # Its progress stopped too: it never reached the last of its ten steps.
    doomed_steps = [m["params"]["progress"] for m in before if m.get("method") == "notifications/progress"]
    assert 10 not in doomed_steps, doomed_steps
    # Unknown and malformed cancellations are ignored: they cancel nothing and break nothing.
    client.send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "slow", "arguments": {"seconds": 0.2, "steps": 1}}})
    client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "nobody"}})
    client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}})
    client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": {"not": "an id"}}})
    before, reply = client.read_until_response(4)
    assert before == [] and reply["result"]["content"][0]["text"] == "done after 1 steps"
    assert client.request(3, "ping")["id"] == 3


def test_oversized_line_is_refused_and_the_connection_survives(wire):
    client = wire()
    client.initialize()
    client.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'
                    + b"x" * (5 * 1024 * 1024) + b'"}}}\n')
    reply = client.read()
    assert reply["id"] is None and reply["error"]["code"] == -32600 and "line limit" in reply["error"]["message"]
    assert client.request(2, "ping")["id"] == 2


def test_stdin_eof_ends_the_server_without_waiting_for_work_in_flight(wire):
    client = wire()
    client.initialize()
    # A call with a minute of work, then a ping, then end of input, all without reading:
    # the server reads in order, so both requests are admitted before it sees the end.
    client.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "slow", "arguments": {"seconds": 60, "steps": 1}}})
    client.send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
    client.proc.stdin.close()
    # The timeout only bounds a hang; it is half of what the call in flight needs, so a server
    # that waited for its work (answered or not) would still be running here.
    assert client.proc.wait(timeout=30) == 0
    rest = client.buffer + client.proc.stdout.read()
    # What was queued is written (the ping's answer); the call in flight is dropped, unanswered.
    assert [json.loads(line) for line in rest.splitlines()] == [{"jsonrpc": "2.0", "id": 2, "result": {}}]


def test_nothing_but_json_rpc_on_stdout(wire):
    """Every byte the server wrote to stdout, from the first to its exit, is a JSON-RPC message on
    a line of its own: a tool that throws and one whose output breaks its schema included."""
    client = wire()
    client.initialize()
    client.request(1, "tools/call", {"name": "fail", "arguments": {"mode": "throw"}})
    client.request(2, "tools/call", {"name": "bad_output", "arguments": {}})
    client.proc.stdin.close()
    assert client.proc.wait(timeout=5) == 0
    everything = client.transcript + client.proc.stdout.read()
    lines = everything.split(b"\n")
    assert lines[-1] == b"", "the stream ends with a whole line"
    messages = [json.loads(line) for line in lines[:-1]]
    assert all(message.get("jsonrpc") == "2.0" for message in messages), messages
    assert {message.get("id") for message in messages} >= {0, 1, 2}, messages


def test_output_schema_violation_is_an_internal_error(wire):
    client = wire()
    client.initialize()
    reply = client.request(1, "tools/call", {"name": "bad_output", "arguments": {}})
    assert reply["error"]["code"] == -32603 and "structuredContent.count" in reply["error"]["message"]


# Schema conformance: every reply of a scripted session validated against its revision.

def legacy_session(client):
    yield "InitializeResult", client.initialize()
    yield "EmptyResult", client.request(1, "ping")
    yield "ListToolsResult", client.request(2, "tools/list")
    yield "CallToolResult", client.request(3, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
    yield "CallToolResult", client.request(4, "tools/call", {"name": "echo", "arguments": {}})
    yield "ListResourcesResult", client.request(5, "resources/list")
    yield "ListResourceTemplatesResult", client.request(6, "resources/templates/list")
    yield "ReadResourceResult", client.request(7, "resources/read", {"uri": "payment://CA1/PK1/status"})
    yield "ListPromptsResult", client.request(8, "prompts/list")
    yield "GetPromptResult", client.request(9, "prompts/get", {"name": "greet", "arguments": {"name": "Ada"}})
    yield "CompleteResult", client.request(10, "completion/complete", {
        "ref": {"type": "ref/prompt", "name": "greet"}, "argument": {"name": "style", "value": ""}})
    yield "EmptyResult", client.request(11, "logging/setLevel", {"level": "debug"})
    yield "EmptyResult", client.request(12, "resources/subscribe", {"uri": "payment://CA1/PK1/status"})
    client.send({"jsonrpc": "2.0", "id": 13, "method": "tools/call", "params": {"name": "touch", "arguments": {"uri": "payment://CA1/PK1/status"}}})
    yield "ResourceUpdatedNotification", client.read()
    yield "CallToolResult", client.read()
    client.send({"jsonrpc": "2.0", "id": 14, "method": "tools/call", "params": {
        "name": "slow", "arguments": {"seconds": 0.01, "steps": 1}, "_meta": {"progressToken": 7}}})
    yield "ProgressNotification", client.read()
    yield "LoggingMessageNotification", client.read()
    yield "CallToolResult", client.read()
    yield "JSONRPCErrorResponse", client.request(15, "nope")


def modern_session(client):
    yield "DiscoverResult", client.request(1, "server/discover", modern())
    yield "ListToolsResult", client.request(2, "tools/list", modern())
    yield "CallToolResult", client.request(3, "tools/call", modern({"name": "add", "arguments": {"a": 1, "b": 2}}))
    yield "ListResourcesResult", client.request(4, "resources/list", modern())
    yield "ListResourceTemplatesResult", client.request(5, "resources/templates/list", modern())
    yield "ReadResourceResult", client.request(6, "resources/read", modern({"uri": "payment://CA1/PK1/status"}))
    yield "ListPromptsResult", client.request(7, "prompts/list", modern())
    yield "GetPromptResult", client.request(8, "prompts/get", modern({"name": "greet", "arguments": {"name": "Ada"}}))
    yield "CompleteResult", client.request(9, "completion/complete", modern({
        "ref": {"type": "ref/prompt", "name": "greet"}, "argument": {"name": "style", "value": ""}}))
    client.send({"jsonrpc": "2.0", "id": "sub", "method": "subscriptions/listen", "params": modern({
        "notifications": {"resourceSubscriptions": ["payment://CA1/PK1/status"], "toolsListChanged": True}})})
    ack = client.read()
    assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub"
    yield "SubscriptionsAcknowledgedNotification", ack
    client.send({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": modern({"name": "touch", "arguments": {"uri": "payment://CA1/PK1/status"}})})
    update = client.read()
    assert update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub"
    yield "ResourceUpdatedNotification", update
    yield "CallToolResult", client.read()
    client.send({"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": modern(
        {"name": "slow", "arguments": {"seconds": 0.01, "steps": 1}},
        progressToken="p", **{"io.modelcontextprotocol/logLevel": "debug"})})
    yield "ProgressNotification", client.read()
    yield "LoggingMessageNotification", client.read()
    yield "CallToolResult", client.read()
    yield "UnsupportedProtocolVersionError", client.request(12, "tools/list", modern(**{"io.modelcontextprotocol/protocolVersion": "2000-01-01"}))
    client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "sub"}})
    client.send({"jsonrpc": "2.0", "id": 13, "method": "tools/call", "params": modern({"name": "touch", "arguments": {"uri": "payment://CA1/PK1/status"}})})
    reply = client.read()
    assert reply["id"] == 13, "no update may follow a cancelled subscription"
    yield "CallToolResult", reply


def test_legacy_messages_match_the_2025_11_25_schema(wire, legacy_schema):
    client = wire()
    count = 0
    for definition, message in legacy_session(client):
        if "id" in message and definition not in ("JSONRPCErrorResponse",):
            legacy_schema.check("JSONRPCResultResponse", message)
            legacy_schema.check(definition, message["result"])
        else:
            legacy_schema.check(definition, message)
        count += 1
    assert count == 19


def test_modern_messages_match_the_2026_07_28_schema(wire, modern_schema):
    client = wire()
    count = 0
    for definition, message in modern_session(client):
        if "id" in message and "result" in message:
            modern_schema.check("JSONRPCResultResponse", message)
            modern_schema.check(definition, message["result"])
            assert message["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcpcore-fixture"
        else:
            modern_schema.check(definition, message)
        count += 1
    assert count == 17
