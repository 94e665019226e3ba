"""CI: the wheel is the product. Build it, install it into a fresh virtualenv outside the checkout, start
`usm serve` from an empty folder, and check what a user of `pip install` gets: the USM definitions
deployed, a case started, its diagram page loading its script and styles, and the front page and the API
reference (Swagger UI, packed from npm like bpmn-js) loading theirs without a token.

Usage: python .ci/check_wheel.py   (run from anywhere; the checkout is this file's parent's parent)
Only the standard library here: this script runs before, and outside, any project virtualenv.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from xml.etree import ElementTree

CHECKOUT = Path(__file__).resolve().parent.parent
TOKEN = "wheel-check-token"
BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"


def run(*command: str | Path, cwd: Path | None = None) -> None:
    print("+", " ".join(str(part) for part in command), flush=True)
    subprocess.run([str(part) for part in command], cwd=cwd, check=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, token: bool = True) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def executable_processes() -> set[str]:
    """The process ids the repository's definitions/ holds: every one must be deployed by the wheel."""
    keys = set()
    for path in (CHECKOUT / "definitions").rglob("*.bpmn"):
        for process in ElementTree.parse(path).getroot().iter(f"{BPMN}process"):
            if process.get("isExecutable", "false") == "true":
                keys.add(process.get("id"))
    return keys


def wait_until_up(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120  # generous: migrating and deploying on a loaded 2-core machine
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"usm serve exited with {server.returncode} before answering")
        try:
            if get(f"{base}/healthz", token=False)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("usm serve did not answer /healthz within 120 s")


def check_service(base: str) -> None:
    status, _, body = get(f"{base}/api/v1/definitions")
    assert status == 200, (status, body[:500])
    listed = {item["key"]: item for item in json.loads(body)["items"]}
    missing = executable_processes() - set(listed)
    assert not missing, f"the installed service did not deploy these USM definitions: {sorted(missing)}"
    print(f"deployed: {len(listed)} definitions, every executable process of definitions/ among them")

    startable = sorted(key for key, item in listed.items() if item.get("startable"))
    assert startable, "no startable definition was deployed"
    case = post_json(f"{base}/api/v1/cases", {"definition": startable[0], "business_key": "WHEEL-1"})
    status, content_type, page = get(f"{base}/api/v1/cases/{case['id']}/diagram")
    assert status == 200 and content_type.startswith("text/html"), (status, content_type, page[:500])
    html = page.decode()
    assets = page_assets(html)
    assert any("bpmn" in asset and asset.endswith(".js") for asset in assets), f"no diagram library in {assets}"
    for asset in assets:
        status, content_type, content = get(base + asset)
        assert status == 200 and content, f"{asset}: {status}"
        print(f"diagram page asset {asset}: {status}, {content_type}, {len(content)} bytes")
    # The pages for people, from the wheel's templates (a template left out of the package is a 500 here).
    for path in ("/cases", f"/cases/{case['id']}", "/tasks", "/definitions", f"/definitions/{startable[0]}",
                 "/compliance", "/insight"):
        status, content_type, page = get(base + path)
        assert status == 200 and content_type.startswith("text/html"), (path, status, page[:500])
        for asset in page_assets(page.decode()):
            assert get(base + asset)[0] == 200, (path, asset)
        print(f"page {path}: {status}, {len(page)} bytes")


def page_assets(html: str) -> list[str]:
    return re.findall(r'<script src="([^"]+)"', html) + re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)


def check_reference(base: str) -> None:
    """The public pages: / and /api/v1/docs, with every file they load, all without a token."""
    status, content_type, page = get(f"{base}/", token=False)
    assert status == 200 and content_type.startswith("text/html"), (status, content_type, page[:500])
    status, content_type, page = get(f"{base}/api/v1/docs", token=False)
    assert status == 200 and content_type.startswith("text/html"), (status, content_type, page[:500])
    assets = page_assets(page.decode())
    assert any("swagger-ui" in asset and asset.endswith(".js") for asset in assets), f"no Swagger UI in {assets}"
    for asset in assets:
        status, content_type, content = get(base + asset, token=False)
        assert status == 200 and content, f"{asset}: {status}"
        print(f"API reference asset {asset}: {status}, {content_type}, {len(content)} bytes")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="usm-wheel-"))
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", work / "dist", CHECKOUT)
    wheel = next((work / "dist").glob("usm_engine-*.whl"))
    run(sys.executable, "-m", "venv", work / "venv")
    run(work / "venv" / "bin" / "pip", "install", "-q", wheel)
    # The project's names live under usm_engine only: no top-level `engine` or `api` to collide with.
    run(work / "venv" / "bin" / "python", "-c",
        "import importlib.util as u, usm_engine.engine, usm_engine.api; "
        "assert u.find_spec('engine') is None and u.find_spec('api') is None, 'top-level names installed'",
        cwd=work)  # not the checkout, whose folders would be found from the current directory

    empty = work / "empty"
    empty.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("USM_")}
    server = subprocess.Popen([str(work / "venv" / "bin" / "usm"), "serve", "--port", str(port), "--workers", "1"],
                              cwd=empty, env={**environment, "USM_ADMIN_TOKEN": TOKEN}, start_new_session=True)
    try:
        wait_until_up(base, server)
        check_service(base)
        check_reference(base)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
    shutil.rmtree(work)
    print("the wheel serves the USM definitions, the diagram page and the API reference from an empty folder")


if __name__ == "__main__":
    main()
