"""Webhooks through the PostgreSQL outbox (issue 26): replicas of the real agent-payments binary in
live mode against the standalone twilio-simulator, sharing one throwaway PostgreSQL. The replica
that took the payment is SIGKILLed while its first delivery hangs at the receiver; a second
replica, started afterwards on the same database, delivers every event, in order, each verified
with `standardwebhooks`. Then `agent-payments webhooks status` and `webhooks replay`."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from replicas_support import SERVER, eventually, tool
from test_replicas import assert_tokenized, bench, finish_at  # noqa: F401 (bench is a fixture)
from test_agent_payments_e2e import new_call
from test_webhooks import new_secret, verified

LEASE_SECONDS = 20  # the shortest allowed: how long a dead replica's delivery waits


class HoldingReceiver:
    """A webhook endpoint on loopback that, until `release()`, holds every request unanswered
    (the sender waits, as on a hung receiver); afterwards it answers 204. Records everything."""

    def __init__(self):
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.requests: list[tuple[dict, bytes, bool]] = []  # headers, body, answered 2xx
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if not receiver.released.is_set():
                    with receiver.lock:
                        receiver.requests.append((headers, body, False))
                    receiver.released.wait(120)
                    self.close_connection = True
                    return  # never answered: the sender is gone or timed out by now
                with receiver.lock:
                    receiver.requests.append((headers, body, True))
                try:
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def held(self) -> list[tuple[dict, bytes]]:
        with self.lock:
            return [(h, b) for h, b, answered in self.requests if not answered]

    def delivered(self) -> list[tuple[dict, bytes]]:
        with self.lock:
            return [(h, b) for h, b, answered in self.requests if answered]

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def holding_receiver():
    receiver = HoldingReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


def webhooks_command(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_PAYMENTS_") and k != "DATABASE_URL"}
    env["DATABASE_URL"] = database_url
    return subprocess.run([str(SERVER), "webhooks", *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def test_a_replica_killed_mid_delivery_loses_no_event_and_another_delivers_them_in_order(bench):
    secret = new_secret()
    with holding_receiver() as receiver:
        b = bench(count=2, start=False, env={
            "AGENT_PAYMENTS_WEBHOOK_URL": receiver.url, "AGENT_PAYMENTS_WEBHOOK_SECRET": secret,
            "AGENT_PAYMENTS_WEBHOOK_LEASE_SECONDS": str(LEASE_SECONDS), "AGENT_PAYMENTS_WEBHOOK_RETRY_FIRST_MS": "100",
        })
        b.start(0)
        call_sid = new_call()
        status = tool(b.proxy.url, "startPaymentCapture", callSid=call_sid, reference="conversation-kill")
        # A's first delivery (payment.started) reaches the receiver and hangs there.
        eventually(lambda: receiver.held(), 15, "A's first delivery reached the receiver")
        # The whole payment goes on meanwhile: a hung endpoint holds up no payment.
        final = finish_at(b.proxy.url, call_sid, status)
        assert_tokenized(final, call_sid)
        rows = b.pg.sql("SELECT event_id, type, state FROM agent_payments_outbox ORDER BY seq")
        assert [r[1] for r in rows][0] == "payment.started" and rows[-1][1] == "payment.completed", rows
        assert all(r[2] == "pending" for r in rows), f"nothing delivered while the receiver hangs: {rows}"
        assert not receiver.delivered()

        killed = b.replicas[0]
        killed.sigkill()
        assert killed.proc.returncode == -9
        receiver.release()
        # Another replica, on the same database, takes over once A's lease runs out.
        b.start(1)
        eventually(lambda: len(receiver.delivered()) >= len(rows), LEASE_SECONDS + 40,
                   f"every event delivered by B ({len(receiver.delivered())} of {len(rows)})")
        events = [verified(secret, headers, body) for headers, body in receiver.delivered()]
        assert [e["id"] for e in events] == [r[0] for r in rows], "each event once, in the order stored"
        assert receiver.held()[0][0]["webhook-id"] == rows[0][0], "the hung delivery was the first event, delivered again under its id"
        assert all(e["data"]["reference"] == "conversation-kill" and e["data"]["callSid"] == call_sid for e in events)
        eventually(lambda: all(r[0] == "delivered" for r in b.pg.sql("SELECT state FROM agent_payments_outbox")), 10,
                   "every outbox row marked delivered")

        # The operator's view: nothing pending, everything delivered.
        shown = webhooks_command(b.pg.url, "status", "--json")
        assert shown.returncode == 0, shown.stderr
        (line,) = shown.stdout.splitlines()
        status_line = json.loads(line)
        assert status_line["endpoint"] == "default" and status_line["pending"] == 0, status_line
        assert status_line["delivered"] == len(rows) and status_line["failed"] == 0, status_line
        table = webhooks_command(b.pg.url, "status")
        assert table.returncode == 0 and table.stdout.startswith("ENDPOINT") and "default" in table.stdout, table

        # A failed event, replayed: pending again, and B delivers it anew under the same id.
        b.pg.sql(f"UPDATE agent_payments_outbox SET state = 'failed', finished_at = now(), last_error = 'HTTP 500' "
                 f"WHERE event_id = '{rows[-1][0]}' RETURNING 1")
        failed = json.loads(webhooks_command(b.pg.url, "status", "--json").stdout)
        assert failed["failed"] == 1 and failed["lastError"] == "HTTP 500", failed
        replayed = webhooks_command(b.pg.url, "replay", "--endpoint", "default")
        assert replayed.returncode == 0 and replayed.stdout.startswith("1 failed event made pending again"), replayed
        eventually(lambda: len(receiver.delivered()) == len(rows) + 1, 15, "the replayed event delivered again")
        assert receiver.delivered()[-1][0]["webhook-id"] == rows[-1][0]
        nothing = webhooks_command(b.pg.url, "replay")
        assert nothing.returncode == 0 and nothing.stdout.startswith("0 failed events"), nothing
        b.stop()


def test_webhooks_commands_need_a_database_and_say_so():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_PAYMENTS_") and k != "DATABASE_URL"}
    done = subprocess.run([str(SERVER), "webhooks", "status"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and done.stdout == "", done
    assert "DATABASE_URL" in done.stderr and "PostgreSQL" in done.stderr, done.stderr
    bad = subprocess.run([str(SERVER), "webhooks", "replay", "--since", "yesterday"], env={**env, "DATABASE_URL": "postgres://u:p@127.0.0.1:1/d"},
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "ISO 8601" in bad.stderr, bad.stderr
