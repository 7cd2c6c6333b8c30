"""The callback receiver over a real socket, with Twilio's own Python RequestValidator as the
oracle: signatures computed over the *public* URLs the receiver hands out are accepted,
anything else is refused and never delivered."""

from __future__ import annotations

import json
import os
import random
import subprocess
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from conftest import BIN

CHECK = BIN / "callback-receiver-check"
TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture(params=["https://pay.example.ngrok.app", "https://pay.example.com:8443/base", "http://127.0.0.1:18080"])
def receiver(request):
    secrets = ["a" * 32, "b" * 32]
    proc = subprocess.Popen([str(CHECK), request.param, *secrets], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "CALLBACK_CHECK_TOKEN": TOKEN})
    ready = json.loads(proc.stdout.readline())
    ready["base"] = request.param
    yield proc, ready
    proc.stdin.close()
    proc.wait(timeout=5)


def post(port: int, base: str, public_url: str, fields: list[tuple[str, str]], signature: str | None) -> int:
    # A proxy or tunnel that publishes us under `base` forwards the rest of the path.
    path = public_url[len(base):]
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=urlencode(fields).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_public_url_signatures_from_twilios_validator(receiver):
    proc, ready = receiver
    port, urls, base = ready["port"], ready["urls"], ready["base"]
    validator = RequestValidator(TOKEN)
    rng = random.Random(5)
    accepted = 0
    for index in range(60):
        url = urls[index % 2]
        fields = [("Sid", "PK" + "%032x" % index), ("Capture", "payment-card-number"), ("PartialResult", "true"),
                  ("PaymentCardNumber", "x" * rng.randint(1, 16)), ("Extra", "é ü+&=%" * rng.randint(0, 2))]
        signature = validator.compute_signature(url, dict(fields))
        assert post(port, base, url, fields, signature) == 204
        accepted += 1
        # Signed over the local address Twilio never used: refused.
        local = f"http://127.0.0.1:{port}" + url[len(base):]
        assert post(port, base, url, fields, validator.compute_signature(local, dict(fields))) == 403
        # Tampered after signing: refused.
        assert post(port, base, url, fields[:-1] + [("Extra", "tampered")], signature) == 403
    # An unknown secret, correctly signed, is not found; a missing signature is forbidden.
    unknown = urls[0][:-32] + "c" * 32
    assert post(port, base, unknown, [("Sid", "PK" + "0" * 32)], validator.compute_signature(unknown, {"Sid": "PK" + "0" * 32})) == 404
    assert post(port, base, urls[0], [("Sid", "PK" + "0" * 32)], None) == 403
    proc.stdin.close()
    delivered = [json.loads(line) for line in proc.stdout.read().decode().splitlines()]
    assert len(delivered) == accepted
    assert {d["secret"] for d in delivered} == {"a" * 32, "b" * 32}
