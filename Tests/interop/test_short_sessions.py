"""Short stdio sessions with the MCP Python SDK 1.x: LangChain's adapter opens one for every tool
call. Nothing may reach such a client that it did not ask for: the server sends no log
notification before `logging/setLevel` (a 1.x client that got start-up lines right after
initialize failed about one session in five with BrokenResourceError)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, ROOT

LEGACY_PYTHON = ROOT / ".venv-mcp1" / "bin" / "python"
SCRIPT = Path(__file__).with_name("mcp1_short_sessions.py")


def test_twenty_short_sessions_with_the_1x_client():
    if not LEGACY_PYTHON.exists():
        pytest.fail(f"{LEGACY_PYTHON} is missing: scripts/setup-test-env creates it (Tests/interop/requirements-mcp1.txt)")
    version = subprocess.run([str(LEGACY_PYTHON), "-c", "import importlib.metadata as m; print(m.version('mcp'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version.startswith("1."), f"the short-session test needs the 1.x SDK, found {version}"
    run = subprocess.run([str(LEGACY_PYTHON), str(SCRIPT), str(BIN / "agent-payments"), "20"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], report["failures"]
    assert report["phases"] == ["active"] * 20, report["phases"]
    assert report["logMessages"] == [], f"log notifications nobody asked for: {report['logMessages'][:3]}"
