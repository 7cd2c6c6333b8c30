"""`agent-payments config check` and the configuration file, as an operator meets them: the real
binary, a JSON and a YAML file, the environment and the command line, with what each says and
its exit status. Secrets never appear in what it prints."""
import json
import os
import subprocess
from pathlib import Path

from conftest import BIN

SERVER = str(BIN / "agent-payments")
ACCOUNT = "AC" + "a" * 32
KEY = "SK" + "b" * 32
SECRET = "api-secret-never-printed-0123456789"


def run(*arguments: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([SERVER, *arguments], env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=30, cwd=cwd)


def origins(output: str) -> dict:
    """NAME → (shown value, origin) from the check's JSON lines (the last line is its verdict)."""
    table = {}
    for line in output.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if "name" in entry:
                table[entry["name"]] = (entry["value"], entry["origin"])
    return table


def test_a_valid_configuration_lists_every_setting_and_its_source(tmp_path):
    config = tmp_path / "agent-payments.json"
    config.write_text(json.dumps({"CALLBACK_BASE_URL": "https://pay.example.com", "CALLBACK_PORT": 8443,
                                  "AGENT_PAYMENTS_MAX_CHARGE": 500, "TWILIO_API_SECRET": SECRET}))
    result = run("config", "check", "--json", "--config", str(config),
                 env={"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_API_KEY": KEY, "CALLBACK_PORT": "9443"})
    assert result.returncode == 0, result.stderr
    table = origins(result.stdout)
    assert table["TWILIO_ACCOUNT_SID"] == (ACCOUNT, "environment")
    assert table["CALLBACK_PORT"] == ("9443", "environment")  # the environment wins over the file
    assert table["AGENT_PAYMENTS_MAX_CHARGE"] == ("500", f"file {config}")
    assert table["TWILIO_API_SECRET"][0] == "<redacted>"
    assert table["AGENT_PAYMENTS_MAX_WAIT_SECONDS"] == ("3", "default")
    assert SECRET not in result.stdout + result.stderr
    verdict = json.loads(result.stdout.rstrip().splitlines()[-1])
    assert verdict == {"ok": True, "summary": "Twilio, MCP over stdio, sessions in memory"}


def test_the_first_mistake_exits_1_with_the_sentence_start_up_gives(tmp_path):
    check = run("config", "check", "--json", "--simulate", env={"AGENT_PAYMENTS_MAX_WAIT_SECONDS": "90"})
    serve = run("--simulate", env={"AGENT_PAYMENTS_MAX_WAIT_SECONDS": "90"})
    assert check.returncode == 1
    sentence = "AGENT_PAYMENTS_MAX_WAIT_SECONDS must be seconds between 0.1 and 60"
    assert sentence in check.stderr and sentence in serve.stderr and serve.returncode != 0
    assert origins(check.stdout)["AGENT_PAYMENTS_MAX_WAIT_SECONDS"] == ("90", "environment")
    verdict = json.loads(check.stdout.rstrip().splitlines()[-1])
    assert verdict["ok"] is False and verdict["error"].startswith(sentence)


def test_a_yaml_file_and_the_command_line_over_it(tmp_path):
    config = tmp_path / "agent-payments.yaml"
    config.write_text("AGENT_PAYMENTS_HTTP: '7777'\nAGENT_PAYMENTS_CURRENCIES: [USD, EUR]\n")
    result = run("config", "check", "--json", "--simulate", "--http", "127.0.0.1:0", env={"AGENT_PAYMENTS_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    table = origins(result.stdout)
    assert table["AGENT_PAYMENTS_HTTP"] == ("127.0.0.1:0", "command line")
    assert table["AGENT_PAYMENTS_CURRENCIES"][0] == "USD,EUR"
    assert "MCP over HTTP on 127.0.0.1:0" in json.loads(result.stdout.rstrip().splitlines()[-1])["summary"]


def test_a_misspelt_key_in_the_file_is_refused_by_check_and_by_serve(tmp_path):
    config = tmp_path / "agent-payments.json"
    config.write_text(json.dumps({"CALLBACK_PROT": 8443}))
    for arguments in (["config", "check", "--simulate", "--config", str(config)], ["serve", "--simulate", "--config", str(config)]):
        result = run(*arguments)
        assert result.returncode != 0
        assert '"CALLBACK_PROT" is not a setting' in result.stderr, result.stderr


def test_the_seed_cli_still_serves_with_credentials_as_arguments(tmp_path):
    # The seed's form: three arguments. Without a public URL it refuses, naming what to set.
    result = run(ACCOUNT, KEY, SECRET)
    assert result.returncode != 0 and "CALLBACK_BASE_URL" in result.stderr
    assert SECRET not in result.stderr
