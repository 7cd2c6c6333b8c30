"""Voice-agent frameworks take whole simulated payments through their own MCP tool paths.

The OpenAI Agents SDK (openai-agents 0.24.0), pipecat (pipecat-ai 1.14.0) and LiveKit Agents
(livekit-agents 1.8.9) connect to the real
agent-payments binary (`--simulate`) over stdio and over Streamable HTTP (loopback, with a bearer
token), turn its tools into what their model is offered, and call them the way their agent loop
does. No model and no network beyond loopback: a scripted stand-in for the model reads exactly
what the framework hands the model and calls whatever the server's `nextStep` names, with
`nextStep.arguments` as they are.

- openai-agents: `agents.mcp.MCPServerStdio` / `MCPServerStreamableHttp` with their defaults (5 s
  client session timeout, no retries); tools converted as an agent converts them with
  `mcp_config={"convert_schemas_to_strict": True}` (`Agent.get_mcp_tools` ->
  `MCPUtil.to_function_tool`); called through `Runner.run` with a scripted
  `agents.models.interface.Model`, or through `FunctionTool.on_invoke_tool` with the JSON a strict
  model sends: every property present, null unless meant. What the model gets back is the
  Runner's `function_call_output` (`ItemHelpers.tool_call_output_item`).
- pipecat: `pipecat.services.mcp_service.MCPClient.tools()` advertised in an `LLMContext`; a
  scripted `LLMService` in a real `Pipeline` with `LLMContextAggregatorPair` runs each call
  through `LLMService.run_function_calls` -> the handler `MCPClient` registered; what the model
  gets is the tool message pipecat adds to the context (`json.dumps` of the text `MCPClient`
  passes to its result callback).
- LiveKit Agents (livekit-agents 1.8.9): `livekit.agents.llm.mcp.MCPServerStdio` / `MCPServerHTTP`
  with their defaults (5 s client session timeout); tools converted by LiveKit's own
  `MCPToolset.setup` -> `MCPServer.list_tools` -> `_make_function_tool` (raw function tools whose
  schema is the server's inputSchema as is), run by a real `AgentSession` in text mode (no room,
  no audio, no LiveKit server) whose `llm` is a scripted `llm.LLM`: LiveKit parses each function
  call, runs it through its tool executor and puts a `FunctionCallOutput` in the chat context;
  what the model gets is that output's text, read from the context in OpenAI's chat format
  (`ChatContext.to_provider_format("openai")`). Timeouts go through `llm.execute_function_call`,
  LiveKit's standalone tool runner (the same argument parsing and `make_function_call_output`).
  LiveKit's default result resolver hands the model a success's one content block as JSON
  (`{"type": "text", "text": …}`, the server's object as its text) and, for an isError result,
  raises `ToolError` with the blocks' joined text: the server's object itself.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import re
import sys
import tempfile
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, fields

import pytest
from jsonschema import Draft202012Validator

from agents import Agent, FunctionTool, RunConfig, Runner, set_tracing_disabled
from agents.items import ItemHelpers, ModelResponse
from agents.mcp import MCPServerStdio, MCPServerStreamableHttp
from agents.models.interface import Model
from agents.run_context import RunContextWrapper
from agents.strict_schema import ensure_strict_json_schema
from agents.tool_context import ToolContext
from agents.usage import Usage
from livekit.agents import Agent as LiveKitAgent
from livekit.agents import AgentSession
from livekit.agents import llm as lk_llm
from livekit.agents.llm import mcp as lk_mcp
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN
from livekit.agents.voice.tool_executor import UPDATE_TEMPLATE
from loguru import logger as loguru_logger
from mcp import StdioServerParameters
from mcp.client.session_group import StreamableHttpParameters
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
from pipecat.frames.frames import (EndFrame, FunctionCallFromLLM, FunctionCallResultFrame, LLMContextFrame,
                                   LLMFullResponseEndFrame, LLMFullResponseStartFrame, LLMRunFrame)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.services import mcp_service
from pipecat.services.llm_service import LLMService
from pipecat.services.mcp_service import MCPClient
from pipecat.services.settings import LLMSettings
from pipecat.turns.user_turn_strategies import ExternalUserTurnStrategies
from pipecat.workers.runner import WorkerRunner

from conftest import BIN
from test_agent_payments_e2e import new_call
from test_http import clean_env, http_server

pytestmark = pytest.mark.anyio
# The Agents SDK exports traces to OpenAI by default: off, so nothing leaves loopback.
set_tracing_disabled(True)

SERVER = BIN / "agent-payments"
TOKEN = "voice-" + os.urandom(16).hex()
TRANSPORTS = ["stdio", "http"]
CAPTURE_TOOLS = ("captureCardNumber", "captureSecurityCode", "captureExpirationDate", "capturePostalCode",
                 "captureBankRoutingNumber", "captureBankAccountNumber")
FLOW_TOOLS = {"startPaymentCapture", *CAPTURE_TOOLS, "completePaymentCapture", "cancelPaymentCapture", "getPaymentStatus"}
SDK_TIMEOUT = 5       # MCPServerStdio / MCPServerStreamableHttp client_session_timeout_seconds default
LIVEKIT_TIMEOUT = 5   # livekit.agents.llm.mcp.MCPServerStdio / MCPServerHTTP client_session_timeout_seconds (and HTTP timeout) default
CARD = "4000056655665556"  # sent as an argument no tool has: it must never come back
REASON = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
STATUS_KEYS = {"callSid", "paymentSid", "phase", "items", "required", "missing", "version", "nextStep", "message"}


# ---------------------------------------------------------------------------------------------
# The server, over either transport


@dataclass
class Endpoint:
    transport: str
    env: dict | None = None                              # stdio: the server's environment
    url: str | None = None                               # http: the announced MCP endpoint
    headers: dict = field(default_factory=dict)          # http: the bearer token


@contextmanager
def endpoint(transport: str, scripts: dict | None = None, env: dict | None = None):
    """agent-payments --simulate: for stdio, the environment a framework spawns it with; for
    HTTP, a running `--http 127.0.0.1:0` process (test_http.http_server: up once it announces its
    endpoint, SIGTERM and exit status 0 at the end) that requires a bearer token."""
    settings = {"AGENT_PAYMENTS_SIMULATOR_PACING_MS": "0", **(env or {})}
    if transport == "http":
        with http_server({"AGENT_PAYMENTS_HTTP_TOKENS": TOKEN, **settings}, scripts=scripts) as running:
            yield Endpoint("http", url=running.mcp, headers={"Authorization": f"Bearer {TOKEN}"})
        return
    server_env = {**clean_env(), "AGENT_PAYMENTS_LOG_LEVEL": "warning", **settings}
    script_path = None
    if scripts:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as script_file:
            json.dump(scripts, script_file)
        script_path = server_env["AGENT_PAYMENTS_SIMULATOR_SCRIPT"] = script_file.name
    try:
        yield Endpoint("stdio", env=server_env)
    finally:
        if script_path:
            os.unlink(script_path)


# ---------------------------------------------------------------------------------------------
# What every tool result must be, whichever framework carried it


def one_object(text, where: str) -> dict:
    """The text a model gets: one JSON object, nothing before or after it."""
    assert isinstance(text, str), f"{where}: expected text, got {text!r}"
    try:
        value = json.loads(text)
    except ValueError as error:
        raise AssertionError(f"{where}: the text the model gets is not one JSON object ({error}):\n{text[:1500]}") from None
    assert isinstance(value, dict), f"{where}: a JSON {type(value).__name__}, not an object: {text[:1500]}"
    return value


def check_status(obj: dict, where: str) -> dict:
    """A success: the masked status, a sentence, and a nextStep whose arguments are complete."""
    assert "error" not in obj, f"{where}: refused: {json.dumps(obj)[:1500]}"
    missing = STATUS_KEYS - obj.keys()
    assert not missing, f"{where}: no {sorted(missing)} in {json.dumps(obj)[:1500]}"
    assert isinstance(obj["message"], str) and obj["message"].strip(), f"{where}: message must be a sentence: {obj['message']!r}"
    step = obj["nextStep"]
    assert {"instruction", "waitForCaller"} <= step.keys(), f"{where}: nextStep {step}"
    if step.get("tool"):
        assert step["tool"] in FLOW_TOOLS, f"{where}: nextStep names an unknown tool: {step}"
        arguments = step.get("arguments")
        assert isinstance(arguments, dict), f"{where}: nextStep names {step['tool']} without its arguments: {step}"
        if step["tool"] != "startPaymentCapture":
            assert arguments.get("callSid") == obj["callSid"] and arguments.get("paymentSid") == obj["paymentSid"], \
                f"{where}: nextStep.arguments must name this call and session: {step}"
    return obj


def check_refusal(obj: dict, where: str) -> dict:
    """A refusal: {"error": {reason, message, retryable, whatToDo}, "message"}; returns the error."""
    error = obj.get("error")
    assert isinstance(error, dict), f"{where}: expected a refusal, got {json.dumps(obj)[:1500]}"
    assert isinstance(error.get("reason"), str) and REASON.match(error["reason"]), f"{where}: reason must be kebab-case: {error}"
    assert isinstance(error.get("message"), str) and error["message"].strip(), f"{where}: {error}"
    assert isinstance(error.get("retryable"), bool), f"{where}: retryable must be a boolean: {error}"
    assert isinstance(error.get("whatToDo"), str) and error["whatToDo"].strip(), f"{where}: {error}"
    assert isinstance(obj.get("message"), str) and obj["message"].strip(), f"{where}: a refusal carries a message too: {obj}"
    return error


def check_one_block(result, where: str) -> dict:
    """A raw CallToolResult: exactly one content block, text, one JSON object, the same object as
    structuredContent (refusals included)."""
    blocks = result.content
    assert len(blocks) == 1, f"{where}: {len(blocks)} content blocks: {[getattr(b, 'text', b) for b in blocks]}"
    assert blocks[0].type == "text", f"{where}: {blocks[0]}"
    obj = one_object(blocks[0].text, where)
    assert result.structured_content == obj, f"{where}: structuredContent {result.structured_content} differs from the text {obj}"
    return obj


def token_of(final: dict, where: str) -> str:
    assert final.get("phase") == "completed", f"{where}: the payment did not complete: {json.dumps(final)[:1500]}"
    assert str(final.get("paymentToken", "")).startswith("tok_sim_"), f"{where}: no token: {final}"
    return final["paymentToken"]


# ---------------------------------------------------------------------------------------------
# openai-agents


@asynccontextmanager
async def agents_server(ep: Endpoint, headers: dict | None = None, **options):
    """The SDK's own MCP server class for the transport, with its defaults unless `options` say
    otherwise; yields it with the list of every notification it received."""
    notifications: list = []

    async def on_message(message):
        notifications.append(message)

    if ep.transport == "stdio":
        server = MCPServerStdio(params={"command": str(SERVER), "args": ["--simulate"], "env": ep.env},
                                name="agent-payments", message_handler=on_message, **options)
    else:
        server = MCPServerStreamableHttp(params={"url": ep.url, "headers": {**ep.headers, **(headers or {})}},
                                         name="agent-payments", message_handler=on_message, **options)
    async with server:
        yield server, notifications


def log_messages(notifications: list) -> list:
    return [n for n in notifications if getattr(n, "method", None) == "notifications/message"]


async def strict_tools(server) -> dict[str, FunctionTool]:
    """The tools as an agent gets them with strict schemas on (Agent.get_mcp_tools ->
    MCPUtil.get_all_function_tools(convert_schemas_to_strict=True) -> MCPUtil.to_function_tool)."""
    agent = Agent(name="payments", mcp_servers=[server], mcp_config={"convert_schemas_to_strict": True})
    tools = await agent.get_mcp_tools(RunContextWrapper(context=None))
    by_name = {tool.name: tool for tool in tools}
    assert set(by_name) == FLOW_TOOLS and all(isinstance(t, FunctionTool) for t in tools), by_name
    return by_name


def strict_arguments(tool: FunctionTool, **meant) -> str:
    """The argument string a strict model sends: every property of the tool's schema present,
    null unless meant. A strict model can only produce what that schema accepts, so it is checked."""
    properties = tool.params_json_schema.get("properties", {})
    unknown = sorted(set(meant) - set(properties))
    assert not unknown, f"{tool.name} declares no {unknown}: a strict model cannot send them"
    arguments = {name: meant.get(name) for name in properties}
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in Draft202012Validator(tool.params_json_schema).iter_errors(arguments)]
    assert not problems, f"a strict model cannot send {arguments} to {tool.name} (strict={tool.strict_json_schema}): {problems}"
    return json.dumps(arguments)


def model_text(output) -> str:
    """The one text of a function_call_output's `output`, as the Responses API model gets it."""
    assert isinstance(output, list) and len(output) == 1 and isinstance(output[0], dict) and output[0].get("type") == "input_text", \
        f"the model should get one text holding one JSON object; it gets {str(output)[:1500]}"
    return output[0]["text"]


_call_ids = itertools.count(1)


async def invoke(tool: FunctionTool, arguments: str) -> str:
    """Calls the tool as the Runner does (FunctionTool.on_invoke_tool with a ToolContext and the
    model's argument string) and returns the text the model gets back."""
    call_id = f"call_{next(_call_ids)}"
    output = await tool.on_invoke_tool(
        ToolContext(context=None, tool_name=tool.name, tool_call_id=call_id, tool_arguments=arguments), arguments)
    call = ResponseFunctionToolCall(type="function_call", call_id=call_id, name=tool.name, arguments=arguments)
    return model_text(ItemHelpers.tool_call_output_item(call, output)["output"])


def sender(tools: dict[str, FunctionTool], strict: bool = True):
    """send(name, **meant) -> the object the model gets; strict: every property, null unless meant."""
    async def send(name: str, **meant) -> dict:
        arguments = strict_arguments(tools[name], **meant) if strict else json.dumps(meant)
        return one_object(await invoke(tools[name], arguments), f"{name}({arguments})")
    return send


async def follow(send, status: dict, where: str, strip: tuple = (), limit: int = 20) -> tuple[dict, list]:
    """Calls what nextStep names with nextStep.arguments (less `strip`) until it names no tool."""
    steps = []
    for _ in range(limit):
        tool = status["nextStep"].get("tool")
        if not tool:
            return status, steps
        arguments = {k: v for k, v in status["nextStep"]["arguments"].items() if k not in strip}
        status = check_status(await send(tool, **arguments), f"{where}: {tool}")
        steps.append((tool, status))
    raise AssertionError(f"{where}: still going after {limit} steps: {json.dumps(status)[:1500]}")


class FollowNextStep(Model):
    """A stand-in for a strict model in Runner.run: it starts the payment, then calls whatever
    nextStep names with nextStep.arguments, every other property null; it reads each result
    from the function_call_output the Runner gives it. Failures are kept for the test to raise
    (the Runner would otherwise see only a model that stopped)."""

    def __init__(self, start: dict, limit: int = 20):
        self.start, self.limit = start, limit
        self.seen: list[tuple[str, dict]] = []
        self.failure: BaseException | None = None
        self.ids = itertools.count(1)

    def decide(self, input, tools: dict[str, FunctionTool]):
        items = [item for item in input if isinstance(item, dict)] if isinstance(input, list) else []
        names = {item["call_id"]: item["name"] for item in items if item.get("type") == "function_call"}
        outputs = [item for item in items if item.get("type") == "function_call_output"]
        if not outputs:
            loose = sorted(name for name, tool in tools.items() if not tool.strict_json_schema)
            assert not loose, f"the model is offered non-strict schemas for {loose}"
            return "startPaymentCapture", strict_arguments(tools["startPaymentCapture"], **self.start)
        name = names.get(outputs[-1]["call_id"], "?")
        obj = one_object(model_text(outputs[-1]["output"]), f"{name} (Runner)")
        self.seen.append((name, obj))
        if "error" in obj:
            check_refusal(obj, name)
            return None
        step = check_status(obj, name)["nextStep"]
        if not step.get("tool") or len(self.seen) >= self.limit:
            return None
        assert step["tool"] in tools, f"nextStep names {step['tool']}, which the agent was not given"
        return step["tool"], strict_arguments(tools[step["tool"]], **step["arguments"])

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **_):
        n = next(self.ids)
        try:
            call = self.decide(input, {t.name: t for t in tools if isinstance(t, FunctionTool)})
        except Exception as error:  # noqa: BLE001 - reported by the test, not swallowed by the Runner
            self.failure, call = error, None
        if call is None:
            item = ResponseOutputMessage(id=f"msg_{n}", type="message", role="assistant", status="completed",
                                         content=[ResponseOutputText(type="output_text", text="Done.", annotations=[])])
        else:
            item = ResponseFunctionToolCall(type="function_call", id=f"fc_{n}", call_id=f"call_{n}", name=call[0],
                                            arguments=call[1], status="completed")
        return ModelResponse(output=[item], usage=Usage(), response_id=None)

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError("only Runner.run is used")


def nullable(schema: dict) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(nullable(branch) for branch in schema.get("anyOf", []) + schema.get("oneOf", []))


async def test_openai_agents_converts_every_tool_to_a_strict_schema():
    """Each tool converts with convert_schemas_to_strict=True without falling back to non-strict;
    ensure_strict_json_schema accepts each inputSchema; every optional property is nullable, so
    the all-null object a strict model sends when it means nothing is valid for every tool."""
    with endpoint("stdio") as ep:
        async with agents_server(ep) as (server, _):
            listed = {tool.name: tool.input_schema for tool in await server.list_tools()}
            tools = await strict_tools(server)
    problems = []
    for name, schema in sorted(listed.items()):
        try:
            ensure_strict_json_schema(json.loads(json.dumps(schema)))
        except Exception as error:  # noqa: BLE001 - every tool is reported, not just the first
            problems.append(f"{name}: ensure_strict_json_schema refused it: {error}")
        if not tools[name].strict_json_schema:
            problems.append(f"{name}: the SDK fell back to a non-strict schema")
        properties, required = schema.get("properties", {}), set(schema.get("required", []))
        problems += [f"{name}.{p}: optional but not nullable: {properties[p]}" for p in properties if p not in required and not nullable(properties[p])]
        if "callSid" in required:
            problems.append(f"{name}: callSid is required")
        if name != "startPaymentCapture" and "paymentSid" in required:
            problems.append(f"{name}: paymentSid is required")
        wanted = {"waitSeconds", "restart"} if name in CAPTURE_TOOLS else {"waitSeconds"} if name in ("completePaymentCapture", "getPaymentStatus") else set()
        problems += [f"{name}: no {p}" for p in sorted(wanted - properties.keys())]
        all_null = {p: None for p in tools[name].params_json_schema.get("properties", {})}
        if not Draft202012Validator(tools[name].params_json_schema).is_valid(all_null):
            problems.append(f"{name}: the strict schema refuses the all-null arguments a strict model sends")
    parameter = listed["startPaymentCapture"]["properties"].get("parameter", {})
    items = parameter.get("items", {})
    if not (nullable(parameter) and "array" in (parameter.get("type") or []) and set(items.get("properties", {})) == {"name", "value"}):
        problems.append(f"startPaymentCapture.parameter: expected a nullable array of {{name, value}} objects, got {parameter}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_openai_agents_runner_takes_a_whole_payment(transport):
    """Runner.run with strict MCP tools: the stand-in model starts the payment and follows
    nextStep to a token, every call's output one text holding one JSON object; no log
    notifications arrive (the SDK never asks for them)."""
    call_sid = new_call()
    with endpoint(transport) as ep:
        async with agents_server(ep) as (server, notifications):
            assert (server.client_session_timeout_seconds, server.max_retry_attempts) == (SDK_TIMEOUT, 0), "the SDK's defaults"
            model = FollowNextStep({"callSid": call_sid})
            agent = Agent(name="payments", instructions="Take the caller's card payment.", model=model,
                          mcp_servers=[server], mcp_config={"convert_schemas_to_strict": True})
            result = await Runner.run(agent, "The caller wants to save a card.", max_turns=25, run_config=RunConfig(tracing_disabled=True))
    if model.failure:
        raise model.failure
    assert result.final_output == "Done.", result.final_output
    called = [name for name, _ in model.seen]
    assert called[0] == "startPaymentCapture" and called.count("startPaymentCapture") == 1, called
    assert {"captureCardNumber", "captureSecurityCode", "captureExpirationDate", "completePaymentCapture"} <= set(called), called
    final = model.seen[-1][1]
    token_of(final, transport)
    assert final["callSid"] == call_sid and final["paymentCardNumber"] == "xxxxxxxxxxxx1111", final
    assert not log_messages(notifications), f"notifications/message nobody asked for: {log_messages(notifications)[:3]}"


def normalized(steps: list[tuple[str, dict]], call_sid: str) -> list:
    """The steps with what differs between two sessions replaced: SIDs, simulator ids (token,
    profile), times, versions, how long a wait took."""
    text = json.dumps(steps).replace(call_sid, "<call>")
    text = re.sub(r"PK[0-9a-fA-F]{32}", "<payment>", text)
    text = re.sub(r"\b([a-z]+)_sim_[A-Za-z0-9]+", r"\1_sim_<id>", text)  # tokens, profiles, charges: new for each session
    out = json.loads(text)
    for _, obj in out:
        obj.pop("updatedAt", None)
        obj.pop("version", None)
        if isinstance(obj.get("waited"), dict):
            obj["waited"].pop("seconds", None)  # how long a wait took varies; its outcome must not
        obj.get("nextStep", {}).get("arguments", {}).pop("afterVersion", None)
    return out


async def test_openai_agents_nulls_mean_the_same_as_omitted_properties():
    """A strict model sends every optional property as null; a loose one leaves them out. Both
    take a whole payment (with one refusal on the way) and get the same answers, step by step."""
    with endpoint("stdio") as ep:
        async with agents_server(ep) as (server, _):
            tools = await strict_tools(server)
            runs = {}
            for strict in (True, False):
                send, call_sid = sender(tools, strict=strict), new_call()
                started = check_status(await send("startPaymentCapture", callSid=call_sid), f"strict={strict}: start")
                early = await send("completePaymentCapture", callSid=call_sid, paymentSid=started["paymentSid"])
                check_refusal(early, f"strict={strict}: complete before any capture")
                final, steps = await follow(send, started, f"strict={strict}")
                token_of(final, f"strict={strict}")
                runs[strict] = normalized([("startPaymentCapture", started), ("completePaymentCapture", early), *steps], call_sid)
    assert [tool for tool, _ in runs[True]] == [tool for tool, _ in runs[False]], f"null and omitted took different steps: {runs}"
    differences = [f"step {i} ({tool}): " + ", ".join(f"{key}: {a.get(key)!r} with nulls, {b.get(key)!r} omitted"
                                                    for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key))
                   for i, ((tool, a), (_, b)) in enumerate(zip(runs[True], runs[False])) if a != b]
    assert not differences, "null and omitted differ:\n" + "\n".join(differences)


class LoseFirstAnswer:
    """Wraps the SDK's MCP session so that the first answer to each named tool is lost after the
    server has acted on it (a dropped connection): the SDK's max_retry_attempts sends it again."""

    def __init__(self, server, tools: set[str]):
        self.sent: collections.Counter = collections.Counter()
        self.lose = set(tools)
        session = server.session
        real = session.call_tool

        async def call_tool(name, arguments=None, *args, **kwargs):
            result = await real(name, arguments, *args, **kwargs)
            self.sent[name] += 1
            if name in self.lose:
                self.lose.discard(name)
                raise ConnectionResetError(f"the answer to {name} was lost")
            return result

        session.call_tool = call_tool


async def test_openai_agents_retried_calls_are_harmless():
    """max_retry_attempts=1 and the first answer to start, capture and complete lost: each retry
    gets the session as it is (resumed / repeated) and nothing is sent to Twilio twice: the card
    is the caller's first one. Control: restart=true does capture again, and the card changes."""
    call_sid = new_call()
    scripts = {call_sid: {"payment-card-number": ["4242424242424242", "5555555555554444"]}}
    with endpoint("stdio", scripts=scripts) as ep:
        async with agents_server(ep, max_retry_attempts=1, retry_backoff_seconds_base=0.01) as (server, _):
            tools = await strict_tools(server)
            send = sender(tools)
            lost = LoseFirstAnswer(server, {"startPaymentCapture", "captureCardNumber", "completePaymentCapture"})
            started = check_status(await send("startPaymentCapture", callSid=call_sid, validCardTypes=["visa", "mastercard"]), "start")
            assert started.get("resumed") is True, f"the retried start found its own session: {started}"
            step = started["nextStep"]
            assert step["tool"] == "captureCardNumber", step
            card = check_status(await send("captureCardNumber", **step["arguments"]), "capture")
            assert card.get("repeated") is True, f"the retried capture sent nothing: {card}"
            card, _ = await settle(send, card)
            assert card["items"]["payment-card-number"]["state"] == "captured" and card["paymentCardNumber"] == "xxxxxxxxxxxx4242", card
            # Control: the same tool with restart=true captures again, and the caller's second card shows.
            again = check_status(await send("captureCardNumber", callSid=call_sid, paymentSid=started["paymentSid"], restart=True), "restart")
            assert not again.get("repeated"), again
            again, _ = await settle(send, again)
            assert again["paymentCardNumber"] == "xxxxxxxxxxxx4444", f"restart=true captured the caller's second card: {again}"
            final, steps = await follow(send, again, "to the end")
            completes = [status for tool, status in steps if tool == "completePaymentCapture"]
            assert completes and completes[0].get("repeated") is True, f"the retried complete sent nothing: {completes}"
            token_of(final, "retried")
            assert final["paymentCardNumber"] == "xxxxxxxxxxxx4444" and final["paymentCardType"] == "mastercard", final
    assert lost.sent["startPaymentCapture"] == 2 and lost.sent["completePaymentCapture"] == 2, lost.sent
    assert lost.sent["captureCardNumber"] == 3, f"2 (lost + retry), then the restart: {lost.sent}"


async def settle(send, status: dict) -> tuple[dict, list]:
    """Follows nextStep only while it says to wait (getPaymentStatus)."""
    steps = []
    for _ in range(20):
        step = status["nextStep"]
        if not step["waitForCaller"]:
            return status, steps
        assert step.get("tool") == "getPaymentStatus", f"a wait names getPaymentStatus: {step}"
        status = check_status(await send("getPaymentStatus", **step["arguments"]), "wait")
        steps.append(("getPaymentStatus", status))
    raise AssertionError(f"never settled: {status}")


def largest_wait(tool: FunctionTool, wanted: float = 30) -> float:
    schema = tool.params_json_schema["properties"]["waitSeconds"]
    return min(wanted, schema.get("maximum", wanted))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_openai_agents_a_long_wait_ends_before_the_sdk_timeout(transport):
    """With the default AGENT_PAYMENTS_MAX_WAIT_SECONDS, a capture asked to wait long returns
    within the budget (3 s) while the caller is still typing (one digit every 400 ms), well inside the SDK's
    5 s session timeout, and names getPaymentStatus with waitSeconds as the next step."""
    with endpoint(transport, env={"AGENT_PAYMENTS_SIMULATOR_PACING_MS": "400"}) as ep:
        async with agents_server(ep) as (server, _):
            assert server.client_session_timeout_seconds == SDK_TIMEOUT
            tools = await strict_tools(server)
            send, call_sid = sender(tools), new_call()
            started, _ = await settle(send, check_status(await send("startPaymentCapture", callSid=call_sid), "start"))
            # The SDK's own 5 s session timeout is the oracle: a call that outlived it would raise here.
            status = check_status(await send("captureCardNumber", callSid=call_sid, paymentSid=started["paymentSid"],
                                             waitSeconds=largest_wait(tools["captureCardNumber"])), "capture")
            assert status["items"]["payment-card-number"]["state"] != "captured", f"the caller is still typing: {status}"
            step = status["nextStep"]
            assert step["waitForCaller"] and step.get("tool") == "getPaymentStatus", step
            assert isinstance(step["arguments"].get("waitSeconds"), (int, float)), step
            strict_arguments(tools["getPaymentStatus"], **step["arguments"])  # a strict model can send them as they are


async def test_openai_agents_call_sid_from_the_http_header():
    """MCPServerStreamableHttp(headers={"X-Twilio-Call-Sid": …}): a whole payment with callSid and
    paymentSid null in every call; a callSid that disagrees with the header is refused."""
    call_sid, other = new_call(), new_call()
    with endpoint("http") as ep:
        async with agents_server(ep, headers={"X-Twilio-Call-Sid": call_sid}) as (server, _):
            send = sender(await strict_tools(server))
            started = check_status(await send("startPaymentCapture"), "start without callSid")
            assert started["callSid"] == call_sid, started
            final, _ = await follow(send, started, "header", strip=("callSid", "paymentSid"))
            token_of(final, "header")
            for name in ("getPaymentStatus", "startPaymentCapture"):
                error = check_refusal(await send(name, callSid=other), f"{name} for another call")
                assert error["reason"] in ("wrong-call", "call-sid-mismatch"), error


async def test_openai_agents_refusals_are_one_json_object():
    """What the model gets for refused calls: one text block, one JSON object (the same as
    structuredContent) with the error's reason, message, retryable and whatToDo; arguments the
    schema refuses are `invalid-arguments`, and a card number sent anyway never comes back."""
    call_sid = new_call()
    with endpoint("stdio") as ep:
        async with agents_server(ep) as (server, _):
            tools = await strict_tools(server)
            for name, arguments in [("startPaymentCapture", {"callSid": "CA-not-a-call"}),
                                    ("captureCardNumber", {"callSid": call_sid, "paymentSid": "PK" + "0" * 32, "cardNumber": CARD})]:
                raw = await server.call_tool(name, arguments)
                assert raw.is_error, raw
                obj = check_one_block(raw, name)
                assert check_refusal(obj, name)["reason"] == "invalid-arguments", obj
                assert CARD not in json.dumps(raw.model_dump(mode="json")), "the card number came back"
                assert one_object(await invoke(tools[name], json.dumps(arguments)), name) == obj, "the model gets the same object"
            # No callSid, and no header to supply it (stdio): refused.
            nothing = one_object(await invoke(tools["startPaymentCapture"], strict_arguments(tools["startPaymentCapture"])), "start")
            check_refusal(nothing, "start without callSid")
            # A success and a flow refusal, each one block.
            started = check_status(check_one_block(await server.call_tool("startPaymentCapture", {"callSid": call_sid}), "start"), "start")
            raw = await server.call_tool("completePaymentCapture", {"callSid": call_sid, "paymentSid": started["paymentSid"]})
            assert raw.is_error
            check_refusal(check_one_block(raw, "complete before any capture"), "complete before any capture")


# ---------------------------------------------------------------------------------------------
# pipecat


@pytest.fixture
def pipecat_notifications(monkeypatch):
    """pipecat's MCPClient opens a plain ClientSession with no handlers; this records what its
    session receives (the same class, given a message_handler) and quiets pipecat's debug log."""
    received: list = []

    class RecordingSession(mcp_service.ClientSession):
        def __init__(self, *args, **kwargs):
            async def record(message):
                received.append(message)
            kwargs.setdefault("message_handler", record)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(mcp_service, "ClientSession", RecordingSession)
    loguru_logger.remove()
    handler = loguru_logger.add(lambda line: sys.stderr.write(line), level="WARNING")
    yield received
    loguru_logger.remove(handler)
    loguru_logger.add(lambda line: sys.stderr.write(line))


class ScriptedLLM(LLMService):
    """A stand-in for the model in a real pipecat pipeline: on each inference it reads the
    context pipecat built and asks `policy` for the next function call, which pipecat runs
    through its own machinery (run_function_calls -> the handler MCPClient registered)."""

    def __init__(self, policy):
        unused = {f.name: None for f in fields(LLMSettings) if f.name not in ("extra", "use_provider_thinking_default")}
        super().__init__(settings=LLMSettings(**unused))
        self.policy = policy
        self.finished = asyncio.Event()
        self.failure: BaseException | None = None
        self.ids = itertools.count(1)

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        await self.push_frame(LLMFullResponseStartFrame())
        try:
            call = self.policy(tool_results(frame.context.messages))
        except Exception as error:  # noqa: BLE001 - reported by the test, not swallowed by the pipeline
            self.failure, call = error, None
        if call is None:
            self.finished.set()
        else:
            await self.run_function_calls([FunctionCallFromLLM(function_name=call[0], tool_call_id=f"call_{next(self.ids)}",
                                                               arguments=call[1], context=frame.context)])
        await self.push_frame(LLMFullResponseEndFrame())


class CallbackResults(BaseObserver):
    """What MCPClient passed to each call's result callback (FunctionCallResultFrame.result)."""

    def __init__(self):
        super().__init__()
        self.results: dict[str, object] = {}

    async def on_push_frame(self, data: FramePushed):
        if isinstance(data.frame, FunctionCallResultFrame):
            self.results[data.frame.tool_call_id] = data.frame.result


def tool_results(messages) -> list[tuple[str, str]]:
    """(tool name, text) for each tool message in the context: the content is what the model
    gets, pipecat's json.dumps of the callback's text, so it decodes to that text."""
    names, out = {}, []
    for message in messages:
        for call in message.get("tool_calls") or []:
            names[call["id"]] = call["function"]["name"]
        if message.get("role") == "tool":
            name = names.get(message["tool_call_id"], "?")
            text = json.loads(message["content"])
            assert isinstance(text, str), f"{name}: pipecat handed the model {message['content'][:500]}"
            out.append((name, text))
    return out


async def pipecat_run(ep: Endpoint, policy, headers: dict | None = None, seconds: float = 20) -> list[tuple[str, dict]]:
    """Runs `policy` as the model of a pipeline [user aggregator, ScriptedLLM, assistant
    aggregator] whose context advertises MCPClient.tools(); returns (tool, object) for every
    call, each the one JSON object in the text the model got."""
    if ep.transport == "stdio":
        params = StdioServerParameters(command=str(SERVER), args=["--simulate"], env=ep.env)
    else:
        params = StreamableHttpParameters(url=ep.url, headers={**ep.headers, **(headers or {})})
    mcp = MCPClient(server_params=params)
    observer = CallbackResults()
    llm = ScriptedLLM(policy)
    timed_out = False
    try:
        tools = await mcp.tools()
        assert {schema.name for schema in tools.standard_tools} == FLOW_TOOLS, tools
        assert all(schema.handler is not None for schema in tools.standard_tools), "MCPClient attaches its handler"
        context = LLMContext(messages=[{"role": "system", "content": "Take the caller's card payment."}], tools=tools)
        # No audio here: external turn strategies, so the default local smart-turn model is not loaded.
        pair = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(user_turn_strategies=ExternalUserTurnStrategies()))
        worker = PipelineWorker(Pipeline([pair.user(), llm, pair.assistant()]), cancel_on_idle_timeout=False, observers=[observer])
        runner = WorkerRunner(handle_sigint=False)

        async def drive():
            nonlocal timed_out
            await worker.queue_frame(LLMRunFrame())
            try:
                await asyncio.wait_for(llm.finished.wait(), seconds)
            except TimeoutError:
                timed_out = True
            await worker.queue_frame(EndFrame())

        await runner.add_workers(worker)
        await asyncio.gather(runner.run(), drive())
    finally:
        await mcp.close()
    if llm.failure:
        raise llm.failure
    assert not timed_out, f"the pipeline did not finish within {seconds} s: {context.messages[-3:]}"
    tool_messages = [m for m in context.messages if m.get("role") == "tool"]
    for message in tool_messages:
        assert message["content"] == json.dumps(observer.results[message["tool_call_id"]], ensure_ascii=False), \
            "the model gets the callback's text, JSON-encoded once more by pipecat"
    return [(name, one_object(text, f"{name} (pipecat)")) for name, text in tool_results(context.messages)]


def follow_policy(start: dict, strip: tuple = (), then=None, limit: int = 20):
    """Starts the payment, then calls what nextStep names with nextStep.arguments (less `strip`)
    until it names no tool; then `then` (a last call, or None)."""
    then_sent = []

    def policy(results):
        if not results:
            return "startPaymentCapture", start
        name, text = results[-1]
        obj = one_object(text, f"{name} (pipecat)")
        if "error" in obj:
            check_refusal(obj, name)
            return None
        step = check_status(obj, name)["nextStep"]
        if step.get("tool") and len(results) < limit:
            return step["tool"], {k: v for k, v in step["arguments"].items() if k not in strip}
        if then and not then_sent:
            then_sent.append(then)
            return then
        return None
    return policy


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pipecat_pipeline_takes_a_whole_payment(transport, pipecat_notifications):
    """MCPClient over stdio / Streamable HTTP in a real pipeline: the stand-in model follows
    nextStep from start to token; each text pipecat hands the model is one JSON object."""
    call_sid = new_call()
    with endpoint(transport) as ep:
        results = await pipecat_run(ep, follow_policy({"callSid": call_sid}))
    called = [name for name, _ in results]
    assert {"captureCardNumber", "captureSecurityCode", "captureExpirationDate", "completePaymentCapture"} <= set(called), called
    for name, obj in results:
        check_status(obj, name)
    final = results[-1][1]
    token_of(final, transport)
    assert final["callSid"] == call_sid and final["paymentCardNumber"] == "xxxxxxxxxxxx1111", final
    assert not log_messages(pipecat_notifications), f"notifications/message nobody asked for: {log_messages(pipecat_notifications)[:3]}"


async def test_pipecat_a_model_that_repeats_each_call(pipecat_notifications):
    """A model that sends every start, capture and complete twice in a row: the second start is
    `resumed`, the second capture and complete `repeated`, and nothing reached Twilio twice (the
    caller's first card is the one captured)."""
    call_sid = new_call()
    scripts = {call_sid: {"payment-card-number": ["4242424242424242", "5555555555554444"]}}
    repeatable = ("startPaymentCapture", *CAPTURE_TOOLS, "completePaymentCapture")
    sent: list[tuple[str, dict]] = []
    follow_next = follow_policy({"callSid": call_sid, "validCardTypes": ["visa", "mastercard"]}, limit=40)

    def policy(results):
        if sent and sent[-1][0] in repeatable and (len(sent) < 2 or sent[-2] != sent[-1]):
            call = sent[-1]      # the same call again, at once
        else:
            call = follow_next(results)
        if call:
            sent.append(call)
        return call

    with endpoint("http", scripts=scripts) as ep:
        results = await pipecat_run(ep, policy)
    pairs = [(results[i], results[i + 1]) for i in range(len(results) - 1)
             if sent[i][0] in repeatable and sent[i] == sent[i + 1] and (i == 0 or sent[i - 1] != sent[i])]
    assert {name for (name, _), _ in pairs} == {"startPaymentCapture", "captureCardNumber", "captureSecurityCode",
                                                "captureExpirationDate", "completePaymentCapture"}, sent
    for (name, first), (_, second) in pairs:
        check_status(second, f"repeated {name}")
        flag = "resumed" if name == "startPaymentCapture" else "repeated"
        assert second.get(flag) is True, f"the second {name} says {flag}: {second}"
        assert second["paymentSid"] == first["paymentSid"], (first, second)
    final = results[-1][1]
    token_of(final, "repeats")
    assert final["paymentCardNumber"] == "xxxxxxxxxxxx4242" and final["paymentCardType"] == "visa", final


async def test_pipecat_call_sid_from_the_http_header(pipecat_notifications):
    """StreamableHttpParameters(headers={"X-Twilio-Call-Sid": …}): a whole payment with neither
    callSid nor paymentSid in any call; then a callSid that disagrees with the header is refused."""
    call_sid, other = new_call(), new_call()
    policy = follow_policy({}, strip=("callSid", "paymentSid"), then=("getPaymentStatus", {"callSid": other}))
    with endpoint("http") as ep:
        results = await pipecat_run(ep, policy, headers={"X-Twilio-Call-Sid": call_sid})
    *payment, (last_name, last) = results
    assert payment and payment[0][1].get("callSid") == call_sid, payment[:1]
    token_of(payment[-1][1], "header")
    assert last_name == "getPaymentStatus", results
    assert check_refusal(last, "another call's SID")["reason"] in ("wrong-call", "call-sid-mismatch"), last


async def test_pipecat_refusals_are_one_json_object(pipecat_notifications):
    """pipecat ignores isError and hands the model the text alone: a refusal's text must be one
    JSON object too. Arguments the schema refuses are `invalid-arguments`; a card number sent
    anyway never comes back."""
    call_sid = new_call()
    calls = [("startPaymentCapture", {"callSid": "CA-not-a-call"}),
             ("captureCardNumber", {"callSid": call_sid, "paymentSid": "PK" + "0" * 32, "cardNumber": CARD}),
             ("startPaymentCapture", {})]

    def policy(results):
        return calls[len(results)] if len(results) < len(calls) else None

    with endpoint("stdio") as ep:
        results = await pipecat_run(ep, policy)
    assert [name for name, _ in results] == [name for name, _ in calls], results
    reasons = [check_refusal(obj, name)["reason"] for name, obj in results]
    assert reasons[:2] == ["invalid-arguments", "invalid-arguments"], reasons
    assert CARD not in json.dumps(results), "the card number came back"


# ---------------------------------------------------------------------------------------------
# LiveKit Agents


def livekit_server(ep: Endpoint, headers: dict | None = None, **options) -> lk_mcp.MCPServer:
    """LiveKit's own MCP server class for the transport, with its defaults unless `options` say
    otherwise (over HTTP: the bearer token, plus `headers`)."""
    if ep.transport == "stdio":
        return lk_mcp.MCPServerStdio(command=str(SERVER), args=["--simulate"], env=ep.env, **options)
    return lk_mcp.MCPServerHTTP(url=ep.url, headers={**ep.headers, **(headers or {})}, **options)


def check_livekit_defaults(server: lk_mcp.MCPServer) -> None:
    """LiveKit's defaults as constructed: 5 s for each MCP request (the ClientSession read timeout
    it is given) and, over HTTP, 5 s for the HTTP transport, which a URL ending in /mcp makes
    Streamable HTTP (any other path would be SSE)."""
    assert server._read_timeout == LIVEKIT_TIMEOUT, f"LiveKit's client_session_timeout_seconds default: {server._read_timeout}"
    if isinstance(server, lk_mcp.MCPServerHTTP):
        assert server._timeout == LIVEKIT_TIMEOUT, f"LiveKit's HTTP timeout default: {server._timeout}"
        assert server._use_streamable_http, f"{server}: the /mcp endpoint is Streamable HTTP"


@dataclass
class LiveKitOutput:
    """One tool result as the model gets it: the FunctionCallOutput's text (the tool message's
    content in OpenAI's chat format) and LiveKit's is_error beside it."""
    name: str
    call_id: str
    text: str
    is_error: bool


def livekit_outputs(chat_ctx) -> list[LiveKitOutput]:
    """Every tool output in the chat context, in order, checked against what the provider format
    hands the model for it."""
    messages, _ = chat_ctx.to_provider_format("openai")
    contents = {m["tool_call_id"]: m["content"] for m in messages if m.get("role") == "tool"}
    outputs = []
    for item in chat_ctx.items:
        if item.type == "function_call_output":
            assert contents.get(item.call_id) == item.output, \
                f"{item.name}: the model gets {str(contents.get(item.call_id))[:500]!r}, not the FunctionCallOutput {item.output[:500]!r}"
            outputs.append(LiveKitOutput(item.name, item.call_id, item.output, item.is_error))
    return outputs


def livekit_object(out: LiveKitOutput, wrapped: bool = True) -> dict:
    """The server's one JSON object in what LiveKit handed the model. A refusal reaches the model
    as LiveKit's ToolError, the blocks' joined text, so the object itself, marked is_error. A
    success goes through the result resolver: LiveKit's default hands over the one content block
    as JSON, `{"type": "text", "text": …}`, whose text is the object (`wrapped`); a resolver that
    returns the block's text hands over the object itself."""
    where = f"{out.name} ({out.call_id}, LiveKit)"
    obj = one_object(out.text, where)
    if wrapped and not out.is_error:
        assert obj.keys() == {"type", "text", "annotations", "_meta"} and obj["type"] == "text", \
            f"{where}: LiveKit's default resolver hands the model the content block as JSON; got {out.text[:1500]}"
        obj = one_object(obj["text"], f"{where}: the content block's text")
    assert ("error" in obj) == out.is_error, f"{where}: is_error={out.is_error} for {json.dumps(obj)[:1500]}"
    return obj


_UPDATE_HEAD, _UPDATE_TAIL = UPDATE_TEMPLATE.split("{message}")


def progress_message(out: LiveKitOutput) -> str | None:
    """The progress message in one of LiveKit's update outputs (RunContext.update wraps each in
    UPDATE_TEMPLATE), or None when `out` is a tool's result."""
    head = _UPDATE_HEAD.format(function_name=out.name)
    if out.text.startswith(head) and out.text.endswith(_UPDATE_TAIL):
        return out.text[len(head):len(out.text) - len(_UPDATE_TAIL)]
    return None


class LiveKitModel(lk_llm.LLM):
    """A stand-in for the model in a real AgentSession: each inference reads the tool outputs of
    the chat context LiveKit built and asks `policy` for the next function call, which LiveKit
    then parses and runs through its own tool executor. When LiveKit asks for words only
    (tool_choice "none": the reply to a progress update, or once max_tool_steps is reached), it
    says a sentence and calls nothing, as a model must. Failures are kept for the test to raise."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy
        self.offered: dict[str, dict] = {}     # tool name -> function schema, as the last inference got them (OpenAI format)
        self.turns: list[str] = []             # each inference: the tool it called, or "say"
        self.failure: BaseException | None = None
        self.ids = itertools.count(1)

    def chat(self, *, chat_ctx, tools=None, conn_options=DEFAULT_API_CONNECT_OPTIONS, parallel_tool_calls=NOT_GIVEN,
             tool_choice=NOT_GIVEN, extra_kwargs=NOT_GIVEN):
        return LiveKitModelStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options, tool_choice=tool_choice)


class LiveKitModelStream(lk_llm.LLMStream):
    def __init__(self, model: LiveKitModel, *, tool_choice, **kwargs):
        super().__init__(model, **kwargs)
        self.model, self.tool_choice = model, tool_choice

    async def _run(self) -> None:
        model, call = self.model, None
        try:
            schemas = lk_llm.ToolContext(self._tools).parse_function_tools("openai")
            model.offered = {schema["function"]["name"]: schema["function"] for schema in schemas}
            if self.tool_choice != "none" and model.failure is None:
                call = model.policy(livekit_outputs(self.chat_ctx), model.offered)
        except Exception as error:  # noqa: BLE001 - reported by the test, not swallowed by the session
            model.failure, call = error, None
        model.turns.append(call[0] if call else "say")
        if call is None:
            delta = lk_llm.ChoiceDelta(role="assistant", content="Thank you.")
        else:
            delta = lk_llm.ChoiceDelta(role="assistant", tool_calls=[lk_llm.FunctionToolCall(
                name=call[0], arguments=json.dumps(call[1]), call_id=f"call_{next(model.ids)}")])
        self._event_ch.send_nowait(lk_llm.ChatChunk(id=f"chunk_{next(model.ids)}", delta=delta))


class LiveKitPolicy:
    """What the stand-in model does with the outputs it is shown: each tool result is acted on
    once (a deferred reply can show an old one again); a progress update is only spoken about.
    Every call it makes must be one the offered schema accepts (unless `valid` is false: LiveKit
    sends a raw tool's arguments as the model wrote them). `finished` is set once it is done."""

    def __init__(self, wrapped: bool = True, valid: bool = True):
        self.wrapped, self.valid = wrapped, valid
        self.sent: list[tuple[str, dict]] = []
        self.seen: list[tuple[str, dict, str]] = []   # (tool, the server's object, LiveKit's call id) per result
        self.updates: list[tuple[str, str, str]] = []  # (tool, progress message, call id) per update
        self.acted: set[str] = set()
        self.finished = asyncio.Event()

    def __call__(self, outputs: list[LiveKitOutput], offered: dict) -> tuple[str, dict] | None:
        fresh = []
        for out in outputs:
            if out.call_id in self.acted:
                continue
            self.acted.add(out.call_id)
            message = progress_message(out)
            if message is None:
                obj = livekit_object(out, self.wrapped)
                self.seen.append((out.name, obj, out.call_id))
                fresh.append(obj)
            else:
                self.updates.append((out.name, message, out.call_id))
        if self.finished.is_set() or (self.sent and not fresh):
            return None
        call = self.next_call(fresh[-1] if fresh else None)
        if call is None:
            self.finished.set()
            return None
        name, arguments = call
        assert name in offered, f"the model was not offered {name}: {sorted(offered)}"
        problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                    for e in Draft202012Validator(offered[name]["parameters"]).iter_errors(arguments)]
        assert not (self.valid and problems), f"the schema LiveKit offered for {name} refuses {arguments}: {problems}"
        self.sent.append(call)
        return call

    def next_call(self, latest: dict | None) -> tuple[str, dict] | None:
        raise NotImplementedError


class LiveKitFollow(LiveKitPolicy):
    """Starts the payment, then calls what the latest result's nextStep names with
    nextStep.arguments (less `strip`) until it names no tool or a call is refused; then `then`
    (a last call, or None)."""

    def __init__(self, start: dict, strip: tuple = (), then: tuple | None = None, limit: int = 40, **kwargs):
        super().__init__(**kwargs)
        self.start, self.strip, self.then, self.limit = start, strip, then, limit

    def next_call(self, latest):
        if latest is None:
            return "startPaymentCapture", self.start
        if self.then and self.sent[-1] == self.then:
            return None
        step = latest.get("nextStep") or {}
        if "error" in latest:
            check_refusal(latest, self.sent[-1][0])
        elif step.get("tool") and len(self.sent) < self.limit:
            check_status(latest, self.sent[-1][0])
            return step["tool"], {k: v for k, v in step["arguments"].items() if k not in self.strip}
        return self.then


class LiveKitScript(LiveKitPolicy):
    """Sends `calls` in order, one per result, whatever the results say; valid or not."""

    def __init__(self, calls: list[tuple[str, dict]], **kwargs):
        super().__init__(valid=False, **kwargs)
        self.calls = calls

    def next_call(self, latest):
        return self.calls[len(self.sent)] if len(self.sent) < len(self.calls) else None


async def within(awaitable, seconds: float, what: str):
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise AssertionError(f"{what} did not finish within {seconds} s") from None


async def livekit_run(server: lk_mcp.MCPServer, policy: LiveKitPolicy, *, wiring: str = "toolset", tool_options: dict | None = None,
                      max_tool_steps: int | None = 40, turns: tuple = ("I'd like to pay by card.",), seconds: float = 30) -> LiveKitModel:
    """Runs `policy` as the model of a real AgentSession (text only: no room, no audio) whose
    agent gets the server's tools through an MCPToolset (LiveKit's way since 1.8) or through the
    older Agent(mcp_servers=[…]); each of `turns` is a user turn (AgentSession.run), then it waits
    for the policy to finish (a tool's final result can come after its turn ended)."""
    model = LiveKitModel(policy)
    if wiring == "toolset":
        agent = LiveKitAgent(instructions="Take the caller's card payment.",
                             tools=[lk_mcp.MCPToolset(id="payments", mcp_server=server, tool_options=tool_options)])
    else:
        agent = LiveKitAgent(instructions="Take the caller's card payment.", mcp_servers=[server])
    options = {} if max_tool_steps is None else {"max_tool_steps": max_tool_steps}
    try:
        async with AgentSession(llm=model, **options) as session:
            await session.start(agent)
            for turn in turns:
                await within(session.run(user_input=turn), seconds, f"the turn {turn!r}")
            if policy.sent and model.failure is None and max_tool_steps is not None:
                await within(policy.finished.wait(), seconds, f"the payment (tools called: {[name for name, _ in policy.sent]})")
    finally:
        await server.aclose()
    if model.failure:
        raise model.failure
    return model


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_livekit_agent_session_takes_a_whole_payment(transport):
    """LiveKit's MCPServerStdio / MCPServerHTTP with their defaults (5 s) in an MCPToolset, run
    by a real AgentSession: the model is offered each tool with the server's own schema (every
    property optional and nullable, waitFor next-step on getPaymentStatus) and follows nextStep
    from start to token. Over HTTP the call SID comes from the X-Twilio-Call-Sid header alone:
    no call names a callSid or paymentSid. Each output is one JSON object, whose text is the
    server's object."""
    call_sid = new_call()
    by_header = transport == "http"
    with endpoint(transport) as ep:
        server = livekit_server(ep, headers={"X-Twilio-Call-Sid": call_sid} if by_header else None)
        check_livekit_defaults(server)
        policy = LiveKitFollow({} if by_header else {"callSid": call_sid}, strip=("callSid", "paymentSid") if by_header else ())
        model = await livekit_run(server, policy)
    assert set(model.offered) == FLOW_TOOLS, sorted(model.offered)
    for name, function in model.offered.items():
        parameters = function["parameters"]
        assert parameters.get("additionalProperties") is False and "callSid" in parameters["properties"], f"{name}: {parameters}"
        assert not {"callSid", "paymentSid"} & set(parameters.get("required", [])), f"{name}: {parameters.get('required')}"
    assert "next-step" in model.offered["getPaymentStatus"]["parameters"]["properties"]["waitFor"]["enum"]
    assert {"waitSeconds", "restart"} <= model.offered["captureCardNumber"]["parameters"]["properties"].keys()
    called = [name for name, _ in policy.sent]
    assert called[0] == "startPaymentCapture" and called.count("startPaymentCapture") == 1, called
    assert {"captureCardNumber", "captureSecurityCode", "captureExpirationDate", "completePaymentCapture"} <= set(called), called
    assert len(policy.seen) == len(policy.sent), f"every call got one result: {called} -> {[n for n, _, _ in policy.seen]}"
    for name, obj, _ in policy.seen:
        check_status(obj, name)
    final = policy.seen[-1][1]
    token_of(final, transport)
    assert final["callSid"] == call_sid and final["paymentCardNumber"] == "xxxxxxxxxxxx1111", final
    if by_header:
        named = [(name, arguments) for name, arguments in policy.sent if {"callSid", "paymentSid"} & arguments.keys()]
        assert not named, f"calls that named a SID although the header supplies it: {named}"


async def test_livekit_default_max_tool_steps_ends_a_turn_midway():
    """AgentSession's default max_tool_steps (3): one user turn runs at most four tool calls (the
    first and three more steps), then LiveKit asks the model for words only, and the payment
    waits for the next user turn (a caller typing on the keypad says nothing, so a payment agent
    raises the limit: Docs/voice-agents.md). The next turn goes on from the session as it is, to
    the token."""
    call_sid = new_call()
    with endpoint("stdio") as ep:
        policy = LiveKitFollow({"callSid": call_sid})
        model = await livekit_run(livekit_server(ep), policy, max_tool_steps=None, turns=("I'd like to pay by card.",))
    assert [name for name, _ in policy.sent] == ["startPaymentCapture", "captureCardNumber", "captureSecurityCode",
                                                 "captureExpirationDate"], policy.sent
    assert model.turns[-1] == "say" and not policy.finished.is_set(), model.turns
    assert policy.seen[-1][1]["phase"] == "active", policy.seen[-1]
    with endpoint("stdio") as ep:
        policy = LiveKitFollow({"callSid": new_call()})
        await livekit_run(livekit_server(ep), policy, max_tool_steps=None, turns=("I'd like to pay by card.", "Go on."))
    token_of(policy.seen[-1][1], "second turn")


async def test_livekit_mcp_servers_wiring_with_a_text_resolver():
    """Agent(mcp_servers=[MCPServerHTTP(…)]), the older wiring LiveKit still runs (it builds the
    MCPToolset itself), with tool_result_resolver returning the content block's text: the model
    gets the server's object itself for successes as for refusals. A whole payment by the header
    alone, then a getPaymentStatus naming another call is refused with call-sid-mismatch."""
    call_sid, other = new_call(), new_call()
    with endpoint("http") as ep:
        server = livekit_server(ep, headers={"X-Twilio-Call-Sid": call_sid}, tool_result_resolver=lambda ctx: ctx.result.content[0].text)
        policy = LiveKitFollow({}, strip=("callSid", "paymentSid"), then=("getPaymentStatus", {"callSid": other}), wrapped=False)
        await livekit_run(server, policy, wiring="mcp_servers")
    *payment, (last_name, last, _) = policy.seen
    assert payment[0][1]["callSid"] == call_sid, payment[0]
    token_of(payment[-1][1], "resolver")
    assert last_name == "getPaymentStatus", policy.seen
    assert check_refusal(last, "another call's SID")["reason"] == "call-sid-mismatch", last


async def test_livekit_refusals_are_one_json_object():
    """For an isError result LiveKit raises ToolError with the blocks' joined text, and the model
    gets that text marked is_error: one JSON object with reason, message, retryable and whatToDo.
    Arguments the schema refuses are `invalid-arguments` (a card number sent anyway never comes
    back); no callSid and no header (stdio) is refused; completing before any capture is
    `items-missing`, the call's current session found without a paymentSid."""
    call_sid = new_call()
    calls = [("startPaymentCapture", {"callSid": "CA-not-a-call"}),
             ("captureCardNumber", {"callSid": call_sid, "paymentSid": "PK" + "0" * 32, "cardNumber": CARD}),
             ("startPaymentCapture", {}),
             ("startPaymentCapture", {"callSid": call_sid}),
             ("completePaymentCapture", {"callSid": call_sid})]
    with endpoint("stdio") as ep:
        policy = LiveKitScript(calls)
        await livekit_run(livekit_server(ep), policy)
    assert [name for name, _, _ in policy.seen] == [name for name, _ in calls], policy.seen
    objects = [obj for _, obj, _ in policy.seen]
    reasons = [check_refusal(obj, name)["reason"] if "error" in obj else None for (name, _), obj in zip(calls, objects)]
    assert reasons[:2] == ["invalid-arguments", "invalid-arguments"] and reasons[2] and reasons[3] is None, reasons
    assert reasons[4] == "items-missing", reasons
    check_status(objects[3], "start")
    assert objects[4]["error"]["paymentSid"] == objects[3]["paymentSid"], objects[4]
    assert CARD not in json.dumps(objects), "the card number came back"


async def test_livekit_progress_updates_while_the_caller_types():
    """MCPToolOptions(report_progress=True): LiveKit sends a progressToken, and the server's
    progress messages while a wait lasts reach the model through RunContext.update, the first as
    the call's own output (LiveKit's update template around the message; LiveKit asks the model
    to speak about it), later ones and then the result as deferred outputs (`<call>_update_N`,
    `<call>_final`). Each message is a sentence without digits; each result is one JSON object;
    following nextStep from the results still reaches the token, every call inside LiveKit's
    default 5 s with the server's default 3 s waits."""
    call_sid = new_call()
    options = {name: lk_mcp.MCPToolOptions(report_progress=True) for name in FLOW_TOOLS}
    with endpoint("http", env={"AGENT_PAYMENTS_SIMULATOR_PACING_MS": "300"}) as ep:
        server = livekit_server(ep, headers={"X-Twilio-Call-Sid": call_sid})
        check_livekit_defaults(server)
        policy = LiveKitFollow({}, strip=("callSid", "paymentSid"))
        model = await livekit_run(server, policy, tool_options=options, seconds=40)
    assert policy.updates, f"no progress reached the model: {model.turns}"
    assert "captureCardNumber" in {name for name, _, _ in policy.updates}, policy.updates
    for name, message, _ in policy.updates:
        assert message.strip() and not re.search(r"\d", message), f"{name}: a progress message to speak, without digits: {message!r}"
    finals = [call_id for _, _, call_id in policy.seen if call_id.endswith("_final")]
    assert finals, f"no result came after an update: {[c for _, _, c in policy.seen]}"
    assert "say" in model.turns, f"LiveKit never asked the model to speak about an update: {model.turns}"
    for name, obj, _ in policy.seen:
        check_status(obj, name)
    token_of(policy.seen[-1][1], "progress")


async def livekit_call(tools: lk_llm.ToolContext, name: str, arguments: dict) -> LiveKitOutput:
    """One call through llm.execute_function_call, LiveKit's standalone tool runner: what the
    model would get."""
    result = await lk_llm.execute_function_call(
        lk_llm.FunctionToolCall(name=name, arguments=json.dumps(arguments), call_id=f"call_{next(_call_ids)}"), tools)
    out = result.fnc_call_out
    return LiveKitOutput(out.name, out.call_id, out.output, out.is_error)


async def test_livekit_client_timeout_must_stay_above_the_servers_wait():
    """AGENT_PAYMENTS_MAX_WAIT_SECONDS raised to 6.5 behind LiveKit's default 5 s: a capture asked
    to wait while the caller types (one digit every 400 ms) times out in LiveKit, and the model
    gets only "An internal error occurred"; the capture it started goes on (the next status shows
    the caller typing). With client_session_timeout_seconds above the server's wait, the same call
    answers after the server's wait, naming getPaymentStatus with that wait."""
    env = {"AGENT_PAYMENTS_SIMULATOR_PACING_MS": "600", "AGENT_PAYMENTS_MAX_WAIT_SECONDS": "6.5"}
    with endpoint("http", env=env) as ep:
        for options in ({}, {"client_session_timeout_seconds": 9}):
            server = livekit_server(ep, headers={"X-Twilio-Call-Sid": new_call()}, **options)
            await server.initialize()
            try:
                tools = lk_llm.ToolContext(await server.list_tools())
                check_status(livekit_object(await livekit_call(tools, "startPaymentCapture", {})), "start")
                began = time.monotonic()
                out = await livekit_call(tools, "captureCardNumber", {"waitSeconds": 30})
                took = time.monotonic() - began
                if not options:
                    assert out.is_error and out.text == "An internal error occurred", f"{out} after {took:.1f} s"
                    assert LIVEKIT_TIMEOUT <= took < LIVEKIT_TIMEOUT + 1.5, f"LiveKit gave up after {took:.1f} s"
                    status = check_status(livekit_object(await livekit_call(tools, "getPaymentStatus", {})), "status after the timeout")
                    assert status["items"]["payment-card-number"]["state"] in ("capturing", "captured"), status
                    # Let the timed-out call's late answer arrive before closing: the MCP client
                    # raises ClosedResourceError for a response that lands on a closed session.
                    await asyncio.sleep(max(0.0, began + 6.5 + 1.0 - time.monotonic()))
                else:
                    status = check_status(livekit_object(out), f"capture with a {options['client_session_timeout_seconds']} s timeout")
                    assert took > LIVEKIT_TIMEOUT and status["waited"]["seconds"] > LIVEKIT_TIMEOUT, f"{took:.1f} s: {status['waited']}"
                    step = status["nextStep"]
                    assert step["tool"] == "getPaymentStatus" and step["arguments"]["waitSeconds"] == 6.5, step
            finally:
                # Closing LiveKit's MCP client right after a timed-out call can raise the client
                # library's own ClosedResourceError (a late answer landing on a closed session): a
                # teardown race in the client, not the server's behaviour under test.
                try:
                    await server.aclose()
                except BaseException as error:  # noqa: BLE001 - only that race is tolerated
                    leaves = error.exceptions if isinstance(error, BaseExceptionGroup) else (error,)
                    if not all(type(leaf).__name__ == "ClosedResourceError" for leaf in leaves):
                        raise
