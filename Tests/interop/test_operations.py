"""What an operator reads off a running agent-payments: Prometheus metrics at /metrics after a
whole simulated payment, parsed with prometheus-client's own parser (an independent reading of
the exposition format), with bounded labels only; /metrics protected like /mcp off loopback."""
from __future__ import annotations

import json
import re
import secrets
import subprocess

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_agent_payments_e2e import new_call
from test_http import CARD, MODERN, SERVER, TIMEOUT, clean_env, http_server, sdk_payment

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
