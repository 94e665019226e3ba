"""Start `usm serve` as a real process on a free loopback port, for end-to-end tests."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def usm_command() -> str:
    candidate = Path(sys.executable).parent / "usm"
    return str(candidate) if candidate.exists() else (shutil.which("usm") or "usm")


class Server:
    def __init__(self, workdir: Path, database_url: str, admin_token: str, definitions: Path | None = None,
                 timer_worker: bool = True, workers: int = 1):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workdir, self.token = workdir, admin_token
        self.log_path = workdir / f"serve-{self.port}.log"
        self.env = {**os.environ, "USM_DATABASE_URL": database_url, "USM_ADMIN_TOKEN": admin_token}
        self.args = [usm_command(), "serve", "--port", str(self.port), "--workers", str(workers), "--threads", "4",
                     "--definitions", str(definitions or workdir / "definitions")]
        if not timer_worker:
            self.args.append("--no-worker")
        self.process: subprocess.Popen | None = None

    def launch(self) -> "Server":
        """Start the process without waiting for it to answer."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.args, cwd=self.workdir, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def start(self, timeout: float = 30) -> "Server":
        self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"usm serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"usm serve did not become healthy in {timeout}s:\n{self.log()}")

    def request_ok(self) -> bool:
        """Whether /healthz answers 200 now."""
        try:
            return self.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def kill(self) -> None:
        """SIGKILL the whole server (master and workers) at once: a crash, not a shutdown."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(self, method: str, path: str, body=None, headers=None) -> tuple[int, dict | str]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", **({"Content-Type": "application/json"} if data else {}),
            **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw, status = response.read(), response.status
        except urllib.error.HTTPError as error:
            raw, status = error.read(), error.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")
