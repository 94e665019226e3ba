"""`usm serve`'s gunicorn worker: sync workers that a runaway script cannot hold.

A designer's script runs in a sandbox process (engine/script_process.py) and may take up to its time
limit. gunicorn's sync worker (one request at a time per process) is the fastest setting on this engine
(BENCHMARKS.md, "Server settings"), but with it each script that runs away holds a whole process for that
long: two of them on a two-process server leave nobody to answer `/healthz`. Its threaded worker
(gthread) keeps answering, but its threads fight over the GIL and over SQLite's write lock, and its
slowest answers take several times longer.

TurnTakingWorker is the sync worker with several threads that take turns. Only the thread holding the
process's turn accepts a connection and serves it, exactly as the sync worker does, so a process takes a
new connection only when it is free and requests never run side by side. A thread that waits for its
script's sandbox gives up the turn (the engine calls the hook `script_process.set_waiting` installs), so
another thread accepts and serves the next request meanwhile; when the script answers, the waiting
thread has the turn back before any new connection is accepted.
"""
from __future__ import annotations

import errno
import os
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from gunicorn import util
from gunicorn.workers.sync import SyncWorker

from usm_engine.engine import script_process

_IDLE_WAIT = 1.0  # seconds a thread waits for a connection before it looks at whether to stop


class Turns:
    """Whose turn it is to run in this process. A thread coming back from a sandbox goes before any thread
    that would accept a new connection, and one waiting for a connection is woken to make way."""

    def __init__(self) -> None:
        # Two conditions on one lock, so that giving up the turn wakes one thread that can take it, not
        # every idle thread: each woken thread wants the GIL, and the one serving would have to yield it.
        lock = threading.Lock()
        self._acceptors, self._returners = threading.Condition(lock), threading.Condition(lock)
        self._holder: int | None = None
        self._returning = 0
        self.busy_since: float | None = None  # when the holder started serving its current request
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)

    @property
    def wake_fd(self) -> int:
        """Readable when a returning thread wants the turn from one waiting for a connection."""
        return self._wake_read

    @property
    def returning(self) -> int:
        """Threads back from their sandboxes, waiting for the turn."""
        return self._returning

    def holding(self) -> bool:
        return self._holder == threading.get_ident()

    @contextmanager
    def to_accept(self) -> Iterator[None]:
        with self._acceptors:
            while self._holder is not None or self._returning:
                self._acceptors.wait()
            self._holder = threading.get_ident()
        try:
            yield
        finally:
            if self.holding():
                self._give_up()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """While this thread waits for a sandbox process, others may run; then it takes its turn back."""
        if not self.holding():  # not serving a request of this worker (nothing to give up)
            yield
            return
        self._give_up()
        try:
            yield
        finally:
            with self._returners:
                self._returning += 1
                self.wake()
                while self._holder is not None:
                    self._returners.wait()
                self._returning -= 1
                self._holder = threading.get_ident()
                self.busy_since = time.monotonic()

    def wake(self) -> None:
        """Wake the thread waiting for a connection, if one is."""
        try:
            os.write(self._wake_write, b"\0")
        except BlockingIOError:  # the pipe is full of wake-ups already
            pass

    def drain_wake_ups(self) -> None:
        try:
            while os.read(self._wake_read, 512):
                pass
        except BlockingIOError:
            pass

    def _give_up(self) -> None:
        with self._acceptors:
            self._holder, self.busy_since = None, None
            (self._returners if self._returning else self._acceptors).notify()


class TurnTakingWorker(SyncWorker):
    """gunicorn's sync worker, served by `--threads` threads taking turns (see the module's comment). Its
    name must not end in "SyncWorker": gunicorn runs its threaded worker instead of any such class when
    --threads is above 1."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = threading.Event()  # here, not in run(): the signal handlers exist before run()

    def run(self) -> None:
        for listener in self.sockets:
            listener.setblocking(False)
        self.turns = Turns()
        script_process.set_waiting(self.turns.waiting)
        threads = [threading.Thread(target=self._serve_turns, name=f"turn-{n}", daemon=True)
                   for n in range(max(1, self.cfg.threads))]
        for thread in threads:
            thread.start()
        while self.alive and any(thread.is_alive() for thread in threads):
            if not self._stuck():
                self.notify()
            if not self.is_parent_alive():
                break
            self.stopping.wait(min(1.0, (self.timeout or 2) / 4))
        self.alive = False
        self.turns.wake()  # the thread waiting for a connection stops waiting; the others follow in turn
        for thread in threads:
            thread.join(self.cfg.graceful_timeout)

    def handle_exit(self, sig, frame) -> None:
        # Stop as promptly as the sync worker, whose select() the signal interrupts: here the signal
        # reaches only the main thread, so it wakes the others.
        super().handle_exit(sig, frame)
        self.stopping.set()

    def _stuck(self) -> bool:
        """A request that has held the turn longer than --timeout: stop the heartbeat so that the master
        replaces this process, as it does a sync worker stuck that long (waiting for a script does not
        count: the sandbox stops a script at its own limit)."""
        since = self.turns.busy_since
        return bool(self.timeout) and since is not None and time.monotonic() - since > self.timeout

    def _serve_turns(self) -> None:
        while self.alive:
            with self.turns.to_accept():
                # Keep the turn from one request to the next: handing it over would wake another thread
                # for nothing. Give it up only to a thread back from its sandbox.
                while self.alive and self.turns.holding() and not self.turns.returning:
                    self._accept_one()

    def _accept_one(self) -> None:
        ready, _, _ = select.select([*self.sockets, self.turns.wake_fd], [], [], _IDLE_WAIT)
        if self.turns.wake_fd in ready:
            self.turns.drain_wake_ups()
            return  # a thread back from its sandbox goes first
        for listener in ready:
            try:
                client, addr = listener.accept()
            except OSError as exc:  # another process took it first
                if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                    raise
                continue
            client.setblocking(True)
            util.close_on_exec(client)
            self.turns.busy_since = time.monotonic()
            try:
                self.handle(listener, client, addr)
            finally:
                self.turns.busy_since = None  # idle from here: waiting for a connection is not being stuck
            return
