"""A voice app's webhook receiver for agent-payments' payment events.

It does what a voice app does with them: checks each event's Standard Webhooks signature,
drops repeats (an event may be delivered more than once; its id says which), and turns the event
into the message its voice agent should hear next, the way Twilio's ConversationRelay reference
injects payment status changes into the model's conversation as system messages. Here each
message is printed as one JSON line, `{"reference", "type", "system_message"}`; a real app would
append it to the conversation named by `reference` (what the agent passed to
startPaymentCapture) and let the model speak.

    pip install standardwebhooks
    AGENT_PAYMENTS_WEBHOOK_SECRET=whsec_... python receiver.py --port 8088
    # then run agent-payments with AGENT_PAYMENTS_WEBHOOK_URL=http://127.0.0.1:8088/hook

Tests/interop/test_webhooks.py runs it against a whole simulated payment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# What the agent should hear for each event; the event's nextStep.instruction follows.
OPENERS = {
    "payment.started": "The secure payment session is open.",
    "payment.item.requested": "The keypad is ready for the {item}.",
    "payment.item.progress": None,  # the caller is typing: nothing to say, keep quiet
    "payment.item.captured": "The caller finished entering the {item}.",
    "payment.item.invalid": "The {item} the caller entered was not accepted ({reason}).",
    "payment.completed": "The payment went through.",
    "payment.failed": "The payment did not go through ({reason}).",
    "payment.cancelled": "The payment was cancelled.",
    "payment.call_ended": "The call has ended; the payment cannot continue.",
}

ITEM_WORDS = {
    "payment-card-number": "card number", "security-code": "security code", "expiration-date": "expiration date",
    "postal-code": "billing postal code", "bank-routing-number": "bank routing number", "bank-account-number": "bank account number",
}


def system_message(event: dict) -> str | None:
    """The message for the agent, or None when there is nothing to say (the caller is typing)."""
    opener = OPENERS.get(event["type"])
    if opener is None:
        return None
    data = event["data"]
    item = ITEM_WORDS.get((data.get("item") or "").removesuffix("-matcher"), "details")
    text = opener.format(item=item, reason=data.get("reason") or "no reason given")
    return f"{text} {data['nextStep']['instruction']}"


def serve(port: int, secret: str, out=sys.stdout) -> ThreadingHTTPServer:
    webhook = Webhook(secret)
    seen: set[str] = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                event = webhook.verify(body, {k.lower(): v for k, v in self.headers.items()})
            except WebhookVerificationError:
                self.send_response(400)  # not signed by our agent-payments: ignore it
                self.end_headers()
                return
            with lock:
                repeat = event["id"] in seen
                seen.add(event["id"])
            if not repeat:
                message = system_message(event)
                if message:
                    line = {"reference": event["data"]["reference"], "type": event["type"], "system_message": message}
                    print(json.dumps(line), file=out, flush=True)
            self.send_response(204)  # answer fast; never make agent-payments wait on the model
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8088)
    arguments = parser.parse_args()
    secret = os.environ["AGENT_PAYMENTS_WEBHOOK_SECRET"]
    server = serve(arguments.port, secret)
    print(json.dumps({"listening": f"http://127.0.0.1:{server.server_address[1]}/hook"}), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
