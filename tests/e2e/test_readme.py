"""The README's walkthrough runs as written against a real `usm serve` (only the port is swapped for a
free one, so the test never collides with a server a developer has running on 8000)."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.server import Server

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```sh\n(.*?)```", text, re.S)
    assert match, f"README.md has no ```sh block after <!-- {marker} -->"
    return match.group(1)


def test_readme_names_the_two_setup_commands():
    serve, test = readme_block("serve-command"), readme_block("test-command")
    assert "usm serve" in serve and "pip install" in serve
    assert "pytest" in test and "pip install" in test and ".[test]" in test


def test_readme_walkthrough_runs_as_written(tmp_path, database_url):
    (tmp_path / "definitions").mkdir()
    server = Server(tmp_path, database_url, "change-me").start()
    try:
        script = readme_block("walkthrough").replace("http://127.0.0.1:8000", server.base)
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr + server.log()
    outputs = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    deployed, completed, case = outputs[0], outputs[1], outputs[2]
    assert deployed["items"][0]["key"] == "approval"
    assert [t["name"] for t in completed["tasks"]] == ["Decide"]
    assert case["status"] == "running" and case["business_key"] == "REQ-1"
    assert case["data"] == {"item": "laptop", "quantity": 1}
