"""TwilioPayments' webhook signatures against Twilio's own Python RequestValidator
(twilio 9.13.0) over many generated URLs and parameter sets."""

from __future__ import annotations

import json
import random
import string
import subprocess
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from conftest import BIN

CHECK = BIN / "twilio-signature-check"
ALPHABET = string.ascii_letters + string.digits + " +/=&?%:;@-_.~!$'()*,[]{}|\\\"<>é€😀\t"


def text(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(low, high)))


def make_url(rng: random.Random) -> str:
    scheme = rng.choice(["https", "http"])
    host = rng.choice(["example.com", "mycompany.com", "a.b.example.org", "127.0.0.1", "[::1]"])
    port = rng.choice(["", "", ":443", ":80", f":{rng.randint(1, 65535)}"])
    path = "/" + "/".join(rng.choice(["callbacks", "payments", "s3cr3t", "x%20y", "ü"]) for _ in range(rng.randint(0, 3)))
    query = ""
    if rng.random() < 0.5:
        query = "?" + urlencode([(text(rng, 1, 5), text(rng, 0, 8)) for _ in range(rng.randint(1, 3))])
    return f"{scheme}://{host}{port}{path}{query}"


def make_params(rng: random.Random) -> list[tuple[str, str]]:
    names = ["CallSid", "Sid", "Capture", "PartialResult", "Required", "PaymentCardNumber", "Digits", "a", "A", "Ä", "_x"]
    params = []
    for _ in range(rng.randint(0, 16)):
        name = rng.choice(names) if rng.random() < 0.7 else text(rng, 1, 10)
        params.append((name, text(rng, 0, 20)))
        if rng.random() < 0.15:  # repeated names, sometimes with duplicate values
            params.append((name, rng.choice([params[-1][1], text(rng, 0, 5)])))
    return params


class MultiDict(dict):
    """What Flask hands RequestValidator: repeated keys with getall()."""

    def __init__(self, pairs):
        super().__init__()
        self.pairs = pairs
        for key, value in pairs:
            self.setdefault(key, value)

    def getall(self, key):
        return [value for name, value in self.pairs if name == key]


def run_check(cases: list[dict]) -> list[dict]:
    payload = "".join(json.dumps(case) + "\n" for case in cases)
    out = subprocess.run([str(CHECK)], input=payload.encode(), capture_output=True, check=True)
    return [json.loads(line) for line in out.stdout.decode().splitlines()]


def test_signatures_match_twilio_validator_over_random_cases():
    rng = random.Random(20261121)
    cases, expected = [], []
    for index in range(2000):
        token = text(rng, 8, 32)
        url = make_url(rng)
        params = make_params(rng)
        validator = RequestValidator(token)
        python_signature = validator.compute_signature(url, MultiDict(params))
        # Ask Swift to validate a signature Twilio's library made for a port variant of the URL.
        variant = url
        if "://" in url and rng.random() < 0.5:
            scheme, rest = url.split("://", 1)
            authority, sep, tail = rest.partition("/") if "/" in rest else (rest, "", "")
            if not authority.startswith("[") and ":" not in authority:
                variant = f"{scheme}://{authority}:{443 if scheme == 'https' else 80}{sep}{tail}"
        cases.append({"token": token, "url": url, "params": [list(p) for p in params],
                      "signature": validator.compute_signature(variant, MultiDict(params))})
        expected.append((python_signature, validator, url, params, variant != url))

    answers = run_check(cases)
    assert len(answers) == len(cases)
    mismatches = 0
    for case, answer, (python_signature, validator, url, params, _) in zip(cases, answers, expected):
        assert answer["signature"] == python_signature, (case, answer)
        python_valid = validator.validate(url, MultiDict(params), case["signature"])
        assert answer["valid"] == python_valid, (case, answer, python_valid)
        assert validator.validate(url, MultiDict(params), answer["signature"])
        mismatches += answer["signature"] != python_signature
    assert mismatches == 0
    # The port variants really were exercised: most validate, and both readings occur — a signature
    # made over the URL with its default port added, and one made over the URL as given, each
    # accepted many times.
    assert sum(answer["valid"] for answer in answers) > 1500
    with_port = [answer["valid"] for answer, (*_, ported) in zip(answers, expected) if ported]
    as_given = [answer["valid"] for answer, (*_, ported) in zip(answers, expected) if not ported]
    assert sum(with_port) > 300 and sum(as_given) > 300, (sum(with_port), len(with_port), sum(as_given), len(as_given))


def test_forged_and_tampered_signatures_are_refused_by_both():
    rng = random.Random(7)
    cases = []
    for _ in range(300):
        token = text(rng, 8, 16)
        url = make_url(rng)
        params = make_params(rng) + [("Result", "success")]
        good = RequestValidator(token).compute_signature(url, MultiDict(params))
        tampered = params[:-1] + [("Result", "failure")]
        cases.append({"token": token, "url": url, "params": [list(p) for p in tampered], "signature": good})
        cases.append({"token": token + "x", "url": url, "params": [list(p) for p in params], "signature": good})
    for answer in run_check(cases):
        assert answer["valid"] is False
