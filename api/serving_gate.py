"""`usm serve`'s gunicorn worker: requests one at a time per process, which a runaway script cannot hold.

A designer's script runs in a sandbox process (engine/script_process.py) and may take up to its time
limit. One request at a time per process is the fastest setting on this engine (BENCHMARKS.md, "Server
settings"), but with gunicorn's sync worker each script that runs away holds a whole process for that
long: two of them on a two-process server leave nobody to answer `/healthz`. Its threaded worker
(gthread) keeps answering, but its threads fight over the GIL and over SQLite's write lock, and its
slowest answers take several times longer.

TurnTakingWorker serves with several threads that take turns. Only the thread holding the process's turn
accepts a connection or reads a request and serves it, so a process takes new work only when it is free
and requests never run side by side. A thread that waits for its script's sandbox gives up the turn (the
engine calls the hook `script_process.set_waiting` installs), so another thread serves the next request
meanwhile; when the script answers, the waiting thread has the turn back before any new work is taken.

Unlike the sync worker, it keeps connections alive between requests (HTTP/1.1's default), and waits for
nothing in a request but the request itself, and for that at most 10 s per read (api/connections.py): a
connection waiting for its client's next request, one that is closing, and one just accepted whose client
has not sent anything yet all wait in the turn holder's poll() beside the listening sockets, not in a
thread. The sync worker closed every connection after one answer and waited, holding the process, until
the client had closed its side; and a client that connected and sent nothing held it until it did.
"""
from __future__ import annotations

import errno
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker, TConn

from usm_engine.api.connection_counts import ConnectionCounts
from usm_engine.api.connections import Closing, PatientSocket
from usm_engine.engine import script_process

_IDLE_WAIT = 1.0  # seconds a thread waits for a connection before it looks at whether to stop
_OUT_OF_FILES_PAUSE = 0.5  # seconds a process takes no new connection after it ran out of file descriptors
_LOOK_AGAIN = 0.001  # seconds between looks at a new connection left to a process holding fewer


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


def readable(watched: list, timeout: float) -> list:
    """Those of `watched` (sockets and file descriptors) that can be read now or within `timeout` seconds, in
    their order. poll(), not select(): a process holding many connections has descriptors past select()'s
    limit of 1024."""
    poller = select.poll()
    for item in watched:
        poller.register(item, select.POLLIN)
    fds = {fd for fd, _event in poller.poll(timeout * 1000)}
    return [item for item in watched if (item if isinstance(item, int) else item.fileno()) in fds]


class TurnTakingWorker(ThreadWorker):
    """Requests served one at a time per process by `--threads` threads taking turns (see the module's
    comment), over kept-alive connections. gunicorn's sync worker closes every connection after its answer,
    and waits for the client to close its side while holding the process; here a connection whose client
    keeps it alive waits, without a thread, for its next request beside the listening sockets, and one that
    closes finishes closing there too (api/connections.py).

    gunicorn's threaded worker lends what is per connection and per request (`TConn`, `handle`,
    `handle_request`: the parsing, keep-alive decision, access log and error answers); its thread pool and
    poller are not used."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = threading.Event()  # here, not in run(): the signal handlers exist before run()
        # Connections waiting for their next request, least recently served first: `readable` lists the ready
        # ones in this order, so each client is served in its turn. Touched only by the thread holding the turn.
        self.keepalived_conns: dict[socket.socket, TConn] = {}
        self.closing = Closing()
        self._out_of_files_until = 0.0
        # `usm serve` shares these counts among its processes (api/connection_counts.py); without them every
        # process takes whatever connection it can.
        self.counts: ConnectionCounts | None = getattr(self.app, "connection_counts", None)
        self._new_since: float | None = None  # since when a new connection has been left to another process
        self._look_again_at = 0.0

    def run(self) -> None:
        for listener in self.sockets:
            listener.setblocking(False)
        self.turns = Turns()
        script_process.set_waiting(self.turns.waiting)
        if self.counts is not None:
            self.counts.take_slot()
        threads = [threading.Thread(target=self._serve_turns, name=f"turn-{n}", daemon=True)
                   for n in range(max(1, self.cfg.threads))]
        for thread in threads:
            thread.start()
        self.log.info("Serving with %d threads taking turns", len(threads))
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
        if self.counts is not None:
            self.counts.leave_slot()

    def handle_exit(self, sig, frame) -> None:
        # Stop as promptly as the sync worker, whose select() the signal interrupts: here the signal
        # reaches only the main thread, so it wakes the others.
        self.alive = False
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
                    self._serve_one()
                if not self.alive and self.turns.holding():
                    self._last_answers()

    def _serve_one(self) -> None:
        """Wait for a request on a kept-alive connection or for a new connection, and serve one request."""
        # Past gunicorn's --worker-connections, new connections are left to the other processes until some
        # of these close (idle ones do within the keep-alive time).
        now = time.monotonic()
        full = len(self.keepalived_conns) >= self.max_keepalived or now < self._out_of_files_until
        accepting = [] if full or now < self._look_again_at else self.sockets
        watched = [*self.keepalived_conns, *accepting, self.turns.wake_fd, *self.closing.sockets()]
        counts = self.counts
        if counts is not None:
            counts.holding(len(self.keepalived_conns))
            counts.polling(True)
        ready = readable(watched, self._wait_for())
        if counts is not None:
            counts.polling(False)
        if self.turns.wake_fd in ready:
            self.turns.drain_wake_ups()
            return  # a thread back from its sandbox goes first
        self.closing.read(ready)
        if accepting:
            self._take_new([listener for listener in accepting if listener in ready])
        waiting = [sock for sock in ready if sock in self.keepalived_conns]
        if waiting:
            self._serve(self.keepalived_conns.pop(waiting[0]))
        self._forget_expired(spare=waiting)

    def _take_new(self, new: list[socket.socket]) -> None:
        """Accept a new connection on each of the listeners `new` has one waiting on, unless it is better left a
        moment to a process that holds fewer connections (api/connection_counts.py)."""
        if not new:
            self._new_since = None  # none waiting: another process took it, or none came
            return
        now = time.monotonic()
        since = self._new_since if self._new_since is not None else now
        if self.counts is not None and self.counts.leave_to_others(now - since):
            self._new_since, self._look_again_at = since, now + _LOOK_AGAIN
            return
        self._new_since = None
        for listener in new:
            self._accept(listener)
        if self.counts is not None:
            self.counts.holding(len(self.keepalived_conns))

    def _accept(self, listener: socket.socket) -> None:
        try:
            client, addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # No descriptor for it: leave it waiting in the backlog a moment, rather than stop the thread
                # (or spin on a listener that stays readable); idle connections close meanwhile.
                self.log.warning("cannot accept a connection now (%s); waiting %.1f s", exc, _OUT_OF_FILES_PAUSE)
                self._out_of_files_until = time.monotonic() + _OUT_OF_FILES_PAUSE
            elif exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return  # else another process took it first
        util.close_on_exec(client)
        client = PatientSocket.taking(client)
        conn = TConn(self.cfg, client, addr, listener.getsockname())
        conn.set_timeout()  # a client that connects and sends nothing is let go like an idle one
        self.keepalived_conns[client] = conn

    def _serve(self, conn: TConn) -> None:
        conn.data_ready = True  # poll() saw its request coming: read it (api/connections.py bounds each wait)
        self.turns.busy_since = time.monotonic()
        try:
            keep = self.handle(conn) is True
            # A client may send its next request before reading this answer: its bytes may already be
            # buffered, where poll() cannot see them.
            while keep and self.alive and conn.parser.unreader.buf.getvalue():
                keep = self.handle(conn) is True
        finally:
            self.turns.busy_since = None  # idle from here: waiting for a request is not being stuck
        if keep:
            conn.set_timeout()
            self.keepalived_conns[conn.sock] = conn
        else:
            self.closing.add(conn.sock)

    def _wait_for(self) -> float:
        """Seconds to wait in poll(): until a kept-alive or closing connection expires, at most _IDLE_WAIT."""
        deadlines = [conn.timeout for conn in self.keepalived_conns.values()]
        closing = self.closing.deadline()
        if closing is not None:
            deadlines.append(closing)
        now = time.monotonic()
        if now < self._look_again_at:  # at a new connection left to another process, unless that one took it
            deadlines.append(self._look_again_at)
        return max(0.0, min([_IDLE_WAIT, *(deadline - now for deadline in deadlines)]))

    def _forget_expired(self, spare: list) -> None:
        """Close the kept-alive connections idle for longer than gunicorn's --keep-alive, but those with a
        request waiting (`spare`)."""
        now = time.monotonic()
        for sock, conn in list(self.keepalived_conns.items()):
            if conn.timeout <= now and sock not in spare:
                del self.keepalived_conns[sock]
                conn.close()

    def _last_answers(self) -> None:
        """Stopping: answer the requests already sent on kept-alive connections (with "Connection: close",
        since the worker is no longer alive), then close the rest."""
        conns, self.keepalived_conns = self.keepalived_conns, {}
        if conns:
            for sock in readable(list(conns), 0):
                self._serve(conns.pop(sock))
        for conn in conns.values():
            conn.close()
        self.closing.close_all()
