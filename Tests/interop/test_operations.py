"""What an operator reads off a running agent-payments: Prometheus metrics at /metrics after a
whole simulated payment, parsed with prometheus-client's own parser (an independent reading of
the exposition format), with bounded labels only; /metrics protected like /mcp off loopback."""
from __future__ import annotations

import gzip
import http.server
import json
import re
import secrets
import subprocess
import threading
import time

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_agent_payments_e2e import new_call
from test_http import (CARD, MODERN, SERVER, TIMEOUT, clean_env, http_server, legacy_call, legacy_session,
                       modern_headers, modern_request, post, reply_of, sdk_payment)

pytestmark = pytest.mark.anyio

SID = re.compile(r"(CA|PK|AC|SK)[0-9a-fA-F]{32}")


def scrape(base: str, token: str | None = None) -> dict[str, list[tuple[dict, float]]]:
    """Every sample of /metrics by metric family name: (labels, value)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx2.get(base + "/metrics", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4"), response.headers
    families: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            families.setdefault(sample.name, []).append((sample.labels, sample.value))
    return families


def total(families, name: str, **labels) -> float:
    return sum(value for sample_labels, value in families.get(name, [])
               if all(sample_labels.get(key) == wanted for key, wanted in labels.items()))


async def test_a_whole_payment_is_counted_with_bounded_labels():
    call_sid = new_call()
    with http_server(scripts={call_sid: {"payment-card-number": [CARD]}}) as server:
        before = scrape(server.base)
        status = await sdk_payment(server, MODERN, call_sid)
        metrics = scrape(server.base)

        assert total(before, "agent_payments_payments_started_total") == 0, before.get("agent_payments_payments_started_total")
        assert total(metrics, "agent_payments_payments_started_total", method="credit-card") == 1, metrics
        assert total(metrics, "agent_payments_payments_finished_total", method="credit-card", outcome="completed",
                     error="none") == 1
        for item in ("payment-card-number", "expiration-date", "security-code"):
            assert total(metrics, "agent_payments_captures_total", item=item, result="captured") == 1, item
        # The time from a capture request until the item was captured: one observation per item.
        assert total(metrics, "agent_payments_capture_duration_seconds_count") == 3
        # Twilio's REST API as the simulator plays it: one create, one update per capture and the completion.
        assert total(metrics, "agent_payments_twilio_requests_total", operation="create_payment") == 1
        updates = [labels for labels, value in metrics["agent_payments_twilio_requests_total"]
                   if labels["operation"] == "update_payment" and value > 0]
        assert updates and all(labels["status"].startswith("2") for labels in updates), updates
        assert total(metrics, "agent_payments_twilio_request_duration_seconds_count", operation="create_payment") == 1
        # Every callback the simulator sent was accepted; none refused.
        accepted = total(metrics, "agent_payments_callbacks_total", result="accepted")
        assert accepted >= 4, accepted
        assert total(metrics, "agent_payments_callbacks_total") == accepted
        # MCP: the tool calls of the payment, by method, era and result.
        assert total(metrics, "agent_payments_mcp_requests_total", method="tools/call", era="modern", result="ok") >= 5
        assert "agent_payments_connections_open" in metrics

        # Bounded labels: no SID, token or card digits anywhere in the exposition.
        text = httpx2.get(server.base + "/metrics", timeout=TIMEOUT).text
        assert not SID.search(text), SID.search(text)
        assert status["paymentToken"] not in text and CARD[-4:] + '"' not in text


def test_metrics_off_loopback_ask_what_mcp_asks():
    token = secrets.token_hex(32)
    with http_server({"AGENT_PAYMENTS_HTTP_TOKENS": token}, listen="0.0.0.0:0") as server:
        base = server.base.replace("0.0.0.0", "127.0.0.1")
        refused = httpx2.get(base + "/metrics", timeout=TIMEOUT)
        assert refused.status_code == 401, (refused.status_code, refused.text)
        assert "agent_payments_" not in refused.text
        wrong = httpx2.get(base + "/metrics", headers={"Authorization": "Bearer " + "0" * 64}, timeout=TIMEOUT)
        assert wrong.status_code == 401, (wrong.status_code, wrong.text)
        # With the token, the exposition: this very scrape's connection is open while it is written.
        assert total(scrape(base, token), "agent_payments_connections_open") >= 1


async def test_the_audit_trail_says_who_did_what_and_shows_tampering(tmp_path):
    """PCI DSS 10 as an assessor reads it: the file trail of a whole payment over HTTP names the
    principal and its address for every command, records a refused token, holds no card data,
    token or secret, and `audit verify` accepts it, then names the record a tamperer changed."""
    token = secrets.token_hex(32)
    trail = tmp_path / "audit.jsonl"
    call_sid = new_call()
    env = {"AGENT_PAYMENTS_HTTP_TOKENS": f"alice:{token}", "AGENT_PAYMENTS_AUDIT": str(trail),
           "AGENT_PAYMENTS_REPLICA": "replica-a"}
    with http_server(env, scripts={call_sid: {"payment-card-number": [CARD]}}) as server:
        status = await sdk_payment(server, MODERN, call_sid, token=token)
        refused = httpx2.post(server.base + "/mcp", timeout=TIMEOUT, content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                              headers={"Authorization": "Bearer " + "x" * 64, "Content-Type": "application/json",
                                       "Accept": "application/json, text/event-stream"})
        assert refused.status_code == 401, refused.text

    text = trail.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    assert [record["seq"] for record in records] == list(range(1, len(records) + 1))
    assert all(record["type"] == "audit" and record["replica"] == "replica-a" for record in records)
    by_action: dict[str, list[dict]] = {}
    for record in records:
        by_action.setdefault(record["action"], []).append(record)
    assert by_action["configuration.loaded"][0]["actor"] == "system"
    for action in ("payment.start", "payment.capture", "payment.complete"):
        ours = [record for record in by_action[action] if record["outcome"] in ("ok", "repeated")]
        assert ours, (action, by_action.get(action))
        assert all(record["actor"] == "token:alice" and record["origin"] == "127.0.0.1" for record in ours), ours
        assert all(record["call_sid"] == call_sid and record["payment_sid"] == status["paymentSid"] for record in ours)
    assert by_action["callback.accepted"] and all(r["actor"] == "twilio" for r in by_action["callback.accepted"])
    refusal = by_action["authentication.refused"]
    assert len(refusal) == 1 and refusal[0]["origin"] == "127.0.0.1" and refusal[0]["outcome"].startswith("refused"), refusal
    # Nothing a tamperer or an eavesdropper could use: no card data, no token, no secret. The
    # card's last four digits are looked for outside the hashes and ids, whose hex digits hold
    # any four digits now and then (this failed once on a hash with "5556" in it).
    for secret in (token, "x" * 64, status["paymentToken"], CARD):
        assert secret not in text, secret
    readable = json.dumps([{key: value for key, value in record.items() if key not in ("hash", "prev", "id")}
                           for record in records])
    assert CARD[-4:] not in readable, readable

    verified = subprocess.run([str(SERVER), "audit", "verify", "--file", str(trail)], capture_output=True, text=True,
                              timeout=30, env=clean_env())
    assert verified.returncode == 0 and verified.stdout == f"ok: {len(records)} audit records, chain intact\n", verified

    # An assessor's copy with one outcome changed: the record is named, and those before it hold.
    changed = records[3]
    lines = text.splitlines()
    lines[3] = lines[3].replace(f'"outcome":"{changed["outcome"]}"', '"outcome":"refused: nothing happened"')
    trail.write_text("\n".join(lines) + "\n")
    broken = subprocess.run([str(SERVER), "audit", "verify", "--file", str(trail)], capture_output=True, text=True,
                            timeout=30, env=clean_env())
    assert broken.returncode == 1 and "breaks at record 4: its content does not match its hash" in broken.stderr, broken
    assert broken.stdout == ""


def test_metrics_on_a_port_of_their_own_or_off():
    with http_server({"AGENT_PAYMENTS_METRICS": "127.0.0.1:0"}) as server:
        url = server.wait_for_line(re.compile(r"metrics endpoint (http://\S+/metrics)"), 30).group(1)
        assert url.startswith("http://127.0.0.1:") and not url.startswith(server.base), url
        own = httpx2.get(url, timeout=TIMEOUT)
        assert own.status_code == 200 and "agent_payments_" in own.text, own.text[:300]
        assert httpx2.get(server.base + "/metrics", timeout=TIMEOUT).status_code == 404, "not on the main listener"
        assert httpx2.get(url.replace("/metrics", "/mcp"), timeout=TIMEOUT).status_code == 404, "metrics only"
    with http_server({"AGENT_PAYMENTS_METRICS": "off"}) as server:
        assert httpx2.get(server.base + "/metrics", timeout=TIMEOUT).status_code == 404
        assert "metrics endpoint" not in server.stderr_text()


class OTLPReceiver:
    """An OTLP/HTTP trace receiver on loopback: every `POST /v1/traces` decoded with
    opentelemetry-proto (the OpenTelemetry project's own message definitions), an independent
    reading of what swift-otel sends."""

    def __init__(self):
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        self.spans: list = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver.lock:
                    for resource_spans in request.resource_spans:
                        service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                        for scope_spans in resource_spans.scope_spans:
                            receiver.spans.extend((service, span) for span in scope_spans.spans)
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def attributes(span) -> dict:
    values = {}
    for attribute in span.attributes:
        value = attribute.value
        values[attribute.key] = value.string_value or value.int_value or value.double_value or value.bool_value
    return values


async def test_a_payment_is_one_trace_continued_from_the_callers_traceparent(legacy_schema):
    """Traces (issue 28): a tool call continues the caller's trace from `_meta.traceparent`
    (MCP 2026-07-28) or the HTTP `traceparent` header; under it, spans for the store and the
    Twilio request; the notifications its changes send to a subscriber join its trace; each
    callback is a trace of its own linked to the payment's, one span with its store requests as
    events. Exported over OTLP/HTTP to a receiver in this test, decoded with
    opentelemetry-proto; no card data, token or secret in any attribute."""
    from opentelemetry.proto.trace.v1 import trace_pb2

    receiver = OTLPReceiver()
    try:
        trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        header_trace, header_span = secrets.token_hex(16), secrets.token_hex(8)
        call_sid = new_call()
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100",
               "OTEL_METRICS_EXPORTER": "otlp",  # metrics stay Prometheus': the OTel metrics variables are left out
               "AGENT_PAYMENTS_LOG_FORMAT": "json"}
        with http_server(env, scripts={call_sid: {"payment-card-number": [CARD]}}) as server:
            def call(name: str, arguments: dict, traceparent: str | None = None, header: str | None = None) -> dict:
                body = modern_request("tools/call", {"name": name, "arguments": arguments})
                if traceparent:
                    body["params"]["_meta"]["traceparent"] = traceparent
                response = post(server, body, modern_headers(body, extra={"traceparent": header} if header else None))
                assert response.status_code == 200, response.text
                _, reply = reply_of(response)
                return reply["result"]

            started = call("startPaymentCapture", {"callSid": call_sid}, traceparent=f"00-{trace_id}-{caller_span}-01")
            payment_sid = started["structuredContent"]["paymentSid"]
            # A legacy session subscribed to the payment: its changes are sent, so traced.
            watcher = legacy_session(server, legacy_schema)
            legacy_call(server, legacy_schema, watcher, "resources/subscribe",
                        {"uri": f"payment://{call_sid}/{payment_sid}/status"}, "EmptyResult", id=2)
            # `_meta` wins over the header when both name a trace.
            call("captureCardNumber", {"paymentSid": payment_sid, "callSid": call_sid},
                 traceparent=f"00-{trace_id}-{caller_span}-01", header=f"00-{secrets.token_hex(16)}-{header_span}-01")
            status = call("getPaymentStatus", {"paymentSid": payment_sid}, header=f"00-{header_trace}-{header_span}-01")
            token = status["structuredContent"].get("paymentToken")
            # Once the caller has typed, the payment is cancelled and stopped: nothing in flight at SIGTERM.
            deadline = time.monotonic() + 15
            while status["structuredContent"]["items"]["payment-card-number"]["state"] != "captured":
                assert time.monotonic() < deadline, status
                time.sleep(0.05)
                status = call("getPaymentStatus", {"paymentSid": payment_sid})
            call("cancelPaymentCapture", {"paymentSid": payment_sid, "callSid": call_sid},
                 traceparent=f"00-{trace_id}-{caller_span}-01")
            while status["structuredContent"]["phase"] not in ("cancelled", "failed", "call-ended", "completed"):
                assert time.monotonic() < deadline, status
                time.sleep(0.05)
                status = call("getPaymentStatus", {"paymentSid": payment_sid})
        spans = [span for _, span in receiver.spans]
        assert spans, "no span reached the receiver"
        # The JSON log lines written inside the tool calls carry their trace and span.
        logged = [json.loads(line) for line in server.stderr_text().splitlines() if line.startswith("{")]
        traced = [line for line in logged if line.get("trace_id") == trace_id]
        assert traced and all(len(line["span_id"]) == 16 for line in traced), logged[-3:]
        assert {line["span_id"] for line in traced} <= {span.span_id.hex() for span in spans}
        assert {service.get("service.name") for service, _ in receiver.spans} == {"agent-payments"}
        by_id = {span.span_id.hex(): span for span in spans}

        def in_trace(trace: str) -> list:
            return [span for span in spans if span.trace_id.hex() == trace]

        def under(span, ancestor) -> bool:
            while span.parent_span_id:
                if span.parent_span_id == ancestor.span_id:
                    return True
                span = by_id.get(span.parent_span_id.hex())
                if span is None:
                    return False
            return False

        payment_trace = in_trace(trace_id)
        names = [span.name for span in payment_trace]
        start = next(span for span in payment_trace if span.name == "tools/call startPaymentCapture")
        assert start.parent_span_id.hex() == caller_span and start.kind == trace_pb2.Span.SPAN_KIND_SERVER
        assert attributes(start)["mcp.method.name"] == "tools/call"
        assert attributes(start)["gen_ai.tool.name"] == "startPaymentCapture"
        assert attributes(start)["network.transport"] == "tcp"
        twilio = [span for span in payment_trace if span.name == "twilio create_payment"]
        assert twilio and all(under(span, start) and span.kind == trace_pb2.Span.SPAN_KIND_CLIENT for span in twilio), names
        assert attributes(twilio[0])["http.response.status_code"] in (200, 201), attributes(twilio[0])
        assert any(span.name == "payment store write" and under(span, start) for span in payment_trace), names
        capture = next(span for span in payment_trace if span.name == "tools/call captureCardNumber")
        assert capture.parent_span_id.hex() == caller_span
        assert any(span.name.startswith("twilio ") and under(span, capture) for span in payment_trace), names
        assert any(span.name == "notifications/resources/updated" for span in payment_trace), names

        header_spans = in_trace(header_trace)
        assert [span.name for span in header_spans if span.parent_span_id.hex() == header_span] == [
            "tools/call getPaymentStatus"], [span.name for span in header_spans]

        callbacks = [span for span in spans if span.name == "payment callback"]
        assert callbacks and all(span.trace_id.hex() != trace_id and not span.parent_span_id for span in callbacks)
        assert all(any(link.trace_id.hex() == trace_id for link in span.links) for span in callbacks), callbacks[0]
        # A callback is one span: its store requests are events on it, with their durations.
        assert not any(span.parent_span_id in {callback.span_id for callback in callbacks} for span in spans)
        writes = [event for callback in callbacks for event in callback.events if event.name == "payment store write"]
        assert writes and all(attributes(event)["payment.store.duration_ms"] >= 0 for event in writes), callbacks[0]

        # Nothing to steal in any attribute: no card number or its digits, no token.
        values = json.dumps([attributes(span) for span in spans] + [span.name for span in spans])
        for secret in [CARD, CARD[-4:]] + ([token] if token else []):
            assert secret not in values, secret
    finally:
        receiver.close()
