"""One request at a time runs in each server process, except while it waits for a script.

A designer's script runs in a sandbox process (engine/script_process.py) and may take up to its time
limit. With one thread per server process, each script that runs away holds a whole process for that
long: two of them on a two-process server leave nobody to answer `/healthz`. With several threads per
process, requests run side by side, but then they fight over the GIL and over SQLite's write lock, and
the slowest of them wait several times longer than on one thread per process (BENCHMARKS.md, "Server
settings").

The gate keeps the best of both: a process has several threads, but only the thread that holds the gate
runs a request; a thread that waits for its sandbox process lets go of it, so another request runs
meanwhile, and takes it back to go on. Requests are served as by one thread per process, and a script
that runs away holds only a thread that was waiting anyway.
"""
from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from usm_engine.engine import script_process

WsgiApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


class ServingGate:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder = threading.local()

    def _holding(self) -> bool:
        return getattr(self._holder, "held", False)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Run a request: wait for the gate, hold it until the request's work is done."""
        if self._holding():  # a request inside a request (none today): it already holds the gate
            yield
            return
        with self._lock:
            self._holder.held = True
            try:
                yield
            finally:
                self._holder.held = False

    @contextmanager
    def released(self) -> Iterator[None]:
        """While this thread waits (for a sandbox process), let another request run."""
        if not self._holding():
            yield
            return
        self._holder.held = False
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()
            self._holder.held = True


GATE = ServingGate()  # one per process: the lock is what the process's threads share
script_process.set_waiting(GATE.released)


class GatedApp:
    """The WSGI app behind the gate. A slow client holds its own thread only, never the gate: the request
    body (up to the size the API accepts) is read before the gate is taken, and the response is sent
    after it is let go."""

    def __init__(self, app: WsgiApp, max_body_bytes: int, gate: ServingGate = GATE) -> None:
        self.app, self.max_body_bytes, self.gate = app, max_body_bytes, gate

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = str(environ.get("CONTENT_LENGTH") or "")
        if length.isdigit() and 0 < int(length) <= self.max_body_bytes:
            # Larger bodies are left to Flask, which refuses them without reading them.
            environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(int(length)))
        with self.gate.held():
            return self.app(environ, start_response)
