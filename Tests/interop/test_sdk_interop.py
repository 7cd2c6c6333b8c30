"""The official MCP Python SDK (mcp 2.3.0) drives the MCPCore fixture server over real stdio,
in each of its connection modes: legacy (initialize), auto (server/discover probe) and a
pinned 2026-07-28."""

from __future__ import annotations

import json
import warnings
from contextlib import asynccontextmanager

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

from conftest import FIXTURE

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto", "2026-07-28"]
STATUS_URI = "payment://CA111/PK222/status"

warnings.filterwarnings("ignore", category=DeprecationWarning)


def params(*args: str) -> StdioServerParameters:
    return StdioServerParameters(command=str(FIXTURE), args=list(args))


def is_modern(client: Client) -> bool:
    return client.protocol_version == "2026-07-28"


def as_dict(item) -> dict | None:
    if isinstance(item, SessionMessage):
        return item.message.model_dump(by_alias=True, mode="json", exclude_none=True)
    return None


class _Wrapped:
    """Passes everything but what a subclass records through to the SDK's own stream."""

    def __init__(self, inner, log: list[dict]):
        self._inner, self._log = inner, log

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def aclose(self):
        await self._inner.aclose()

    async def __aenter__(self):
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc):
        return await self._inner.__aexit__(*exc)


class _RecordingReader(_Wrapped):
    """The SDK's read stream, recording each message as the SDK takes it off the wire."""

    async def receive(self):
        item = await self._inner.receive()
        if (message := as_dict(item)) is not None:
            self._log.append(message)
        return item

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


class _RecordingWriter(_Wrapped):
    """The SDK's write stream, recording each message as the SDK puts it on the wire."""

    async def send(self, item):
        if (message := as_dict(item)) is not None:
            self._log.append(message)
        await self._inner.send(item)


class Tap:
    """A stdio transport for the SDK that records the JSON-RPC traffic in wire order.

    The SDK hands notifications to callbacks in tasks of their own, so a callback may run after
    a later response has resolved its call; the recording cannot lag like that. The fixture
    server writes one ordered stream, and whatever a request caused (a log message, a resource
    update) is written before that request's own response. Once a call returns, `inbound`
    therefore holds everything it caused: the response is the positive marker, no waiting for
    silence."""

    def __init__(self, *args: str):
        self.args = args
        self.inbound: list[dict] = []
        self.outbound: list[dict] = []

    @asynccontextmanager
    async def transport(self):
        async with stdio_client(params(*self.args)) as (read, write):
            yield _RecordingReader(read, self.inbound), _RecordingWriter(write, self.outbound)

    def notifications(self, method: str) -> list[dict]:
        return [m.get("params", {}) for m in self.inbound if m.get("method") == method]

    def request_id(self, method: str, **params) -> object:
        """The id the SDK gave the one request with this method and these params."""
        ids = [m["id"] for m in self.outbound if m.get("method") == method and "id" in m
               and all(m.get("params", {}).get(k) == v for k, v in params.items())]
        assert len(ids) == 1, (method, params, ids)
        return ids[0]

    def responses(self) -> list[dict]:
        return [m for m in self.inbound if "id" in m and ("result" in m or "error" in m)]


@pytest.mark.parametrize("mode", MODES)
async def test_connects_in_the_expected_era(mode):
    async with Client(params(), mode=mode) as client:
        expected = "2025-11-25" if mode == "legacy" else "2026-07-28"
        assert client.protocol_version == expected
        if mode == "2026-07-28":
            # A pinned client skips the probe; ask the server directly.
            discovered = types.DiscoverResult.model_validate(await client.session.send_discover("2026-07-28"))
            assert discovered.supported_versions == ["2026-07-28"]
            assert discovered.meta["io.modelcontextprotocol/serverInfo"]["name"] == "mcpcore-fixture"
            caps, instructions = discovered.capabilities, discovered.instructions
        else:
            assert client.server_info is not None and client.server_info.name == "mcpcore-fixture"
            caps, instructions = client.server_capabilities, client.instructions
        assert caps.tools is not None and caps.prompts is not None and caps.resources is not None
        assert caps.completions is not None
        assert "test server" in (instructions or "")


@pytest.mark.parametrize("mode", MODES)
async def test_tools_list_call_structured_and_errors(mode):
    async with Client(params(), mode=mode) as client:
        listed = await client.list_tools()
        names = [tool.name for tool in listed.tools]
        assert names[:3] == ["echo", "add", "slow"]
        echo = next(tool for tool in listed.tools if tool.name == "echo")
        assert echo.title == "Echo" and echo.annotations.read_only_hint is True
        add = next(tool for tool in listed.tools if tool.name == "add")
        assert add.output_schema["required"] == ["sum"]

        result = await client.call_tool("echo", {"text": "héllo\nworld"})
        assert not result.is_error and result.content[0].text == "héllo\nworld"

        result = await client.call_tool("add", {"a": 2, "b": 0.5})
        assert result.structured_content == {"sum": 2.5}

        result = await client.call_tool("echo", {"text": 7})
        assert result.is_error and "arguments.text: expected string, got integer" in result.content[0].text

        result = await client.call_tool("echo", {"text": "x", "extra": 1})
        assert result.is_error and "arguments.extra" in result.content[0].text

        result = await client.call_tool("fail", {"mode": "tool"})
        assert result.is_error and result.content[0].text == "the tool failed on purpose"
        assert result.structured_content == {"reason": "requested"}

        result = await client.call_tool("fail", {"mode": "throw"})
        assert result.is_error and "failed on purpose" in result.content[0].text

        with pytest.raises(MCPError) as raised:
            await client.call_tool("fail", {"mode": "protocol"})
        assert raised.value.code == -31999

        with pytest.raises(MCPError) as raised:
            await client.call_tool("no_such_tool", {})
        assert raised.value.code == -32602 and "no_such_tool" in str(raised.value)


@pytest.mark.parametrize("mode", MODES)
async def test_pagination_walks_every_tool(mode):
    async with Client(params("--page-size", "3"), mode=mode) as client:
        names, cursor, pages = [], None, 0
        while True:
            page = await client.list_tools(cursor=cursor, cache_mode="bypass") if cursor else await client.list_tools()
            names += [tool.name for tool in page.tools]
            pages += 1
            cursor = page.next_cursor
            if not cursor:
                break
        assert pages == 3
        assert names == ["echo", "add", "slow", "log", "touch", "fail", "bad_output", "add_tool"]
        with pytest.raises(MCPError) as raised:
            await client.list_tools(cursor="forged", cache_mode="bypass")
        assert raised.value.code == -32602


@pytest.mark.parametrize("mode", MODES)
async def test_resources_templates_and_read(mode):
    async with Client(params(), mode=mode) as client:
        resources = await client.list_resources()
        assert [r.uri for r in resources.resources] == ["demo://readme", STATUS_URI]
        templates = await client.list_resource_templates()
        assert templates.resource_templates[0].uri_template == "payment://{callSid}/{paymentSid}/status"

        read = await client.read_resource("payment://CA9%2F9/PK1/status")
        body = json.loads(read.contents[0].text)
        assert body == {"callSid": "CA9/9", "paymentSid": "PK1", "status": "active"}

        with pytest.raises(MCPError) as raised:
            await client.read_resource("payment://XX/PK1/status")
        assert raised.value.code == (-32602 if is_modern(client) else -32002)


@pytest.mark.parametrize("mode", MODES)
async def test_resource_update_notification_reaches_subscriber(mode):
    received: list[str] = []
    delivered = anyio.Event()
    tap = Tap()

    async def handler(message):
        if isinstance(message, types.ResourceUpdatedNotification):
            received.append(str(message.params.uri))
            delivered.set()

    def updates_on_the_wire() -> list[str]:
        return [n["uri"] for n in tap.notifications("notifications/resources/updated")]

    async with Client(tap.transport(), mode=mode, message_handler=handler) as client:
        if is_modern(client):
            async with client.listen(resource_subscriptions=[STATUS_URI]) as subscription:
                assert list(subscription.honored.resource_subscriptions or []) == [STATUS_URI]
                await client.call_tool("touch", {"uri": "payment://CA1/PK1/status"})  # not subscribed
                await client.call_tool("touch", {"uri": STATUS_URI})
                # Each touch's update precedes its reply: this is everything both caused.
                assert updates_on_the_wire() == [STATUS_URI]
                with anyio.fail_after(5):
                    async for event in subscription:
                        assert STATUS_URI in str(event)
                        break
        else:
            await client.subscribe_resource(STATUS_URI)
            await client.call_tool("touch", {"uri": "payment://CA1/PK1/status"})
            await client.call_tool("touch", {"uri": STATUS_URI})
            assert updates_on_the_wire() == [STATUS_URI]
            with anyio.fail_after(5):
                await delivered.wait()
            assert received == [STATUS_URI]
            await client.unsubscribe_resource(STATUS_URI)
            await client.call_tool("touch", {"uri": STATUS_URI})
            # The touch's reply has arrived, so an update it caused would have arrived before it.
            assert updates_on_the_wire() == [STATUS_URI], "an update reached a client that unsubscribed"


@pytest.mark.parametrize("mode", MODES)
async def test_tool_list_change_is_announced(mode):
    seen = anyio.Event()

    async def handler(message):
        if isinstance(message, types.ToolListChangedNotification):
            seen.set()

    async with Client(params(), mode=mode, message_handler=handler) as client:
        if is_modern(client):
            async with client.listen(tools_list_changed=True) as subscription:
                await client.call_tool("add_tool", {"name": "fresh"})
                with anyio.fail_after(5):
                    async for _event in subscription:
                        break
        else:
            await client.call_tool("add_tool", {"name": "fresh"})
            with anyio.fail_after(5):
                await seen.wait()
        tools = await client.list_tools(cache_mode="bypass")
        assert "fresh" in [tool.name for tool in tools.tools]
        result = await client.call_tool("fresh", {})
        assert result.content[0].text == "hello from fresh"


@pytest.mark.parametrize("mode", MODES)
async def test_prompts_with_arguments(mode):
    async with Client(params(), mode=mode) as client:
        prompts = await client.list_prompts()
        greet = prompts.prompts[0]
        assert greet.name == "greet" and greet.arguments[0].required is True
        result = await client.get_prompt("greet", {"name": "Ada", "style": "pirate"})
        assert result.messages[0].content.text == "Greet Ada in a pirate way."
        with pytest.raises(MCPError) as raised:
            await client.get_prompt("greet", {"style": "formal"})
        assert raised.value.code == -32602 and "name" in str(raised.value)
        with pytest.raises(MCPError) as raised:
            await client.get_prompt("nope", {})
        assert raised.value.code == -32602


@pytest.mark.parametrize("mode", MODES)
async def test_completion(mode):
    async with Client(params(), mode=mode) as client:
        result = await client.complete(types.PromptReference(type="ref/prompt", name="greet"), {"name": "style", "value": "f"})
        assert result.completion.values == ["formal", "friendly"]
        ref = types.ResourceTemplateReference(type="ref/resource", uri="payment://{callSid}/{paymentSid}/status")
        result = await client.complete(ref, {"name": "callSid", "value": "CA"})
        assert result.completion.values == ["CA111", "CA222"]
        result = await client.complete(ref, {"name": "paymentSid", "value": ""}, context_arguments={"callSid": "CA111"})
        assert result.completion.values == ["PK222"]


@pytest.mark.parametrize("mode", MODES)
async def test_log_level_filters_notifications(mode):
    logged: list[tuple[str, object]] = []
    loud = anyio.Event()
    tap = Tap()

    async def on_log(params):
        logged.append((params.level, params.data))
        loud.set()

    def logs_on_the_wire(wire: Tap) -> list[tuple[str, object]]:
        return [(n["level"], n["data"]) for n in wire.notifications("notifications/message")]

    modern_level = "warning" if mode != "legacy" else None
    async with Client(tap.transport(), mode=mode, logging_callback=on_log, log_level=modern_level) as client:
        if not is_modern(client):
            await client.set_logging_level("warning")
        await client.call_tool("log", {"level": "info", "message": "quiet"})
        await client.call_tool("log", {"level": "error", "message": "loud"})
        # Both calls have been answered, and a call's log message precedes its reply.
        assert logs_on_the_wire(tap) == [("error", "loud")]
        with anyio.fail_after(5):
            await loud.wait()
        assert logged == [("error", "loud")]

    if mode != "legacy":
        # Without a per-request level a modern server must send no log messages at all.
        logged.clear()
        tap = Tap()
        async with Client(tap.transport(), mode=mode, logging_callback=on_log) as client:
            result = await client.call_tool("log", {"level": "emergency", "message": "unrequested"})
            assert result.content[0].text == "logged"
            assert logs_on_the_wire(tap) == []
        assert logged == []


@pytest.mark.parametrize("mode", MODES)
async def test_progress_notifications(mode):
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress, total, message):
        updates.append((progress, total, message))

    async with Client(params(), mode=mode) as client:
        result = await client.call_tool("slow", {"seconds": 0.2, "steps": 4}, progress_callback=on_progress)
        assert result.content[0].text == "done after 4 steps"
    assert [u[0] for u in updates] == [1, 2, 3, 4]
    assert updates[-1] == (4, 4, "step 4 of 4")


@pytest.mark.parametrize("mode", MODES)
async def test_cancelled_call_is_never_answered_and_the_server_stays_responsive(mode):
    # The SDK drops a late response to a call it abandoned, so what it returns cannot show
    # whether the server honoured the cancellation; the Tap's recording of the wire can.
    tap = Tap()
    running = anyio.Event()

    async def on_progress(progress, total, message):
        running.set()

    doomed_arguments = {"seconds": 1.0, "steps": 10}  # ten steps of 0.1 s
    async with Client(tap.transport(), mode=mode) as client:
        async with anyio.create_task_group() as group:
            async def doomed():
                await client.call_tool("slow", doomed_arguments, progress_callback=on_progress)
                raise AssertionError("the cancelled call returned")

            group.start_soon(doomed)
            with anyio.fail_after(10):
                await running.wait()  # its first progress: the handler is running
            group.cancel_scope.cancel()  # the SDK sends notifications/cancelled for it
        doomed_id = tap.request_id("tools/call", name="slow", arguments=doomed_arguments)
        cancels = [m["params"]["requestId"] for m in tap.outbound if m.get("method") == "notifications/cancelled"]
        assert cancels == [doomed_id]

        # The marker: the same tool with the same step length, started a step later with twice
        # as many steps. Had the server ignored the cancellation, the doomed call would have been
        # answered about a second before this one; had it answered the cancellation with an
        # error, that would have come at once.
        result = await client.call_tool("slow", {"seconds": 2.0, "steps": 20})
        assert result.content[0].text == "done after 20 steps"
        answered = [m["id"] for m in tap.responses()]
        assert doomed_id not in answered, "the server answered a cancelled request"

        result = await client.call_tool("echo", {"text": "still here"})
        assert result.content[0].text == "still here"


@pytest.mark.parametrize("mode", MODES)
async def test_slow_tool_never_delays_other_requests(mode):
    tap = Tap()
    running = anyio.Event()

    async def on_progress(progress, total, message):
        running.set()

    async with Client(tap.transport(), mode=mode) as client:
        async with anyio.create_task_group() as group:
            done = anyio.Event()

            async def slow():
                # A minute of work in 0.1 s steps; it is cancelled below, long before it ends.
                await client.call_tool("slow", {"seconds": 60, "steps": 600}, progress_callback=on_progress)
                done.set()

            group.start_soon(slow)
            with anyio.fail_after(10):
                await running.wait()  # its first progress: the slow handler is running
            texts = []
            # 30 s only bounds a hang: a server that handled one request at a time would answer
            # none of these before the slow call's minute was up.
            with anyio.fail_after(30):
                for n in range(20):
                    texts.append((await client.call_tool("echo", {"text": f"quick {n}"})).content[0].text)
            assert texts == [f"quick {n}" for n in range(20)]
            # On the wire too: each echo answered once, in the order asked.
            echo_ids = [m["id"] for m in tap.outbound if m.get("method") == "tools/call" and m["params"]["name"] == "echo"]
            assert [m["id"] for m in tap.responses() if m["id"] in echo_ids] == echo_ids
            # Every echo was answered while the slow call was still running, unanswered.
            assert not done.is_set()
            slow_id = tap.request_id("tools/call", name="slow")
            assert slow_id not in [m["id"] for m in tap.responses()]
            group.cancel_scope.cancel()
