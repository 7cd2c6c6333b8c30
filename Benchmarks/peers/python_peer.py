"""The peer in the benchmark: the same tool, resource and prompt names built on the official
Python SDK (mcp 2.3.0, MCPServer), with Twilio stubbed — what a user would otherwise pick.
Only for Benchmarks/run; never part of the tests."""

from __future__ import annotations

import itertools

from mcp.server.mcpserver import MCPServer

server = MCPServer("agent-payments-python-peer", instructions="Benchmark peer with Twilio stubbed.")
sessions: dict[str, dict] = {}
counter = itertools.count(1)


def status(sid: str) -> dict:
    return sessions[sid]


@server.tool()
def startPaymentCapture(callSid: str, chargeAmount: float | None = None, currency: str | None = None,
                        postalCode: bool | None = None, securityCode: bool | None = None) -> dict:
    sid = "PK%032x" % next(counter)
    sessions[sid] = {"callSid": callSid, "paymentSid": sid, "phase": "active", "version": 1, "items": {},
                     "nextStep": {"tool": "captureCardNumber", "instruction": "capture the card number", "waitForCaller": False}}
    return status(sid)


def capture(callSid: str, paymentSid: str, item: str, next_tool: str) -> dict:
    session = sessions[paymentSid]
    session["items"][item] = {"state": "captured", "masked": "xxxx"}
    session["version"] += 1
    session["nextStep"] = {"tool": next_tool, "instruction": "next", "waitForCaller": False}
    return session


@server.tool()
def captureCardNumber(callSid: str, paymentSid: str, captureType: str | None = None) -> dict:
    return capture(callSid, paymentSid, "payment-card-number", "captureSecurityCode")


@server.tool()
def captureSecurityCode(callSid: str, paymentSid: str, captureType: str | None = None) -> dict:
    return capture(callSid, paymentSid, "security-code", "captureExpirationDate")


@server.tool()
def captureExpirationDate(callSid: str, paymentSid: str, captureType: str | None = None) -> dict:
    return capture(callSid, paymentSid, "expiration-date", "completePaymentCapture")


@server.tool()
def completePaymentCapture(callSid: str, paymentSid: str) -> dict:
    session = sessions[paymentSid]
    session.update(phase="completed", result="success", paymentToken="tok_peer", version=session["version"] + 1)
    session["nextStep"] = {"instruction": "done", "waitForCaller": False}
    return session


@server.tool()
def getPaymentStatus(paymentSid: str, callSid: str | None = None, waitSeconds: float | None = None,
                     afterVersion: int | None = None) -> dict:
    return status(paymentSid)


@server.resource("payment://{callSid}/{paymentSid}/status")
def payment_status(callSid: str, paymentSid: str) -> dict:
    return status(paymentSid)


@server.prompt()
def StartCapture(callSid: str) -> str:
    return "Start the payment on " + callSid


if __name__ == "__main__":
    server.run()
