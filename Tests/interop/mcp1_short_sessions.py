"""Run by test_short_sessions.py with the MCP Python SDK 1.x (.venv-mcp1): opens and closes
short stdio sessions against agent-payments the way LangChain's MCP adapter does for every tool
call (spawn, initialize, one tool call, close), and prints what it saw as one JSON line."""

import asyncio
import json
import os
import secrets
import sys
import tempfile
import traceback

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def one_session(binary: str, log_messages: list) -> dict:
    async def on_log(params):
        log_messages.append(str(params.data))

    env = {**os.environ, "AGENT_PAYMENTS_SIMULATOR_PACING_MS": "0"}
    params = StdioServerParameters(command=binary, args=["--simulate"], env=env)
    with tempfile.TemporaryFile("w+") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write, logging_callback=on_log) as session:
                await session.initialize()
                result = await session.call_tool("startPaymentCapture", {"callSid": "CA" + secrets.token_hex(16)})
                return json.loads(result.content[0].text)


def describe(error: BaseException) -> str:
    """An exception, with the leaves of an exception group and where each was raised."""
    if isinstance(error, BaseExceptionGroup):
        return f"{type(error).__name__}[" + "; ".join(describe(inner) for inner in error.exceptions) + "]"
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 2)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


async def main(binary: str, count: int) -> None:
    failures: list[str] = []
    phases: list[str] = []
    log_messages: list[str] = []
    for _ in range(count):
        try:
            status = await asyncio.wait_for(one_session(binary, log_messages), timeout=20)
            phases.append(status.get("phase", "?"))
        except BaseException as error:  # noqa: BLE001 - every failure is reported, by kind
            failures.append(describe(error))
    print(json.dumps({"sessions": count, "failures": failures, "phases": phases, "logMessages": log_messages}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
