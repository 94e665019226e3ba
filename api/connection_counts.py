"""How many client connections each `usm serve` process holds, kept in memory they all share, so that a new
connection goes to a process that holds the fewest.

A kept-alive connection stays with the process that accepted it, and a process serves one request at a time
(api/serving_gate.py). Which process accepts a new connection is a race between those woken by it, so a few
clients that keep their connections (a backend's pool; the benchmark's 8) were often split 5 / 3 between two
processes: the process with 3 then waited for its clients while the other's queued. On PostgreSQL, where a
process also waits for the database, a 5 / 3 split served 445-454 completions/s and a 4 / 4 split 521-528/s
(BENCHMARKS.md, "Connections spread evenly").

The memory is made in gunicorn's master before it forks its workers; each worker takes a free slot for itself.
A worker writes only its own slot and reads the others' without a lock: a count read a moment late only makes
a placement less even, never wrong.
"""
from __future__ import annotations

import multiprocessing
import os

SLOTS = 64  # server processes counted; more than that (never with `usm serve`) take connections as they come
# How long a process holding more connections than another leaves a new connection for it: a long while when the
# other is waiting in poll() (it was woken too and takes the connection at once, unless something is wrong with
# it), and about one request's time when the other is serving (it takes the connection when it is free).
WAIT_FOR_IDLE = 0.1
WAIT_FOR_BUSY = 0.005

_PID, _HELD, _POLLING = range(3)


class ConnectionCounts:
    """Per server process: its pid, the client connections it holds and whether it is waiting in poll()."""

    def __init__(self, slots: int = SLOTS) -> None:
        self._slots = slots
        self._shared = multiprocessing.RawArray("i", 3 * slots)  # pid, held, polling for each slot
        self._lock = multiprocessing.Lock()  # for taking and leaving slots only
        self._mine: int | None = None

    def take_slot(self) -> None:
        """In a worker process: take a slot that no live process holds."""
        with self._lock:
            for slot in range(self._slots):
                pid = self._shared[3 * slot + _PID]
                if pid == 0 or not _alive(pid):
                    self._shared[3 * slot:3 * slot + 3] = [os.getpid(), 0, 0]
                    self._mine = 3 * slot
                    return

    def leave_slot(self) -> None:
        if self._mine is not None:
            with self._lock:
                self._shared[self._mine:self._mine + 3] = [0, 0, 0]
            self._mine = None

    def holding(self, connections: int) -> None:
        if self._mine is not None:
            self._shared[self._mine + _HELD] = connections

    def polling(self, waiting: bool) -> None:
        if self._mine is not None:
            self._shared[self._mine + _POLLING] = int(waiting)

    def leave_to_others(self, waited: float) -> bool:
        """Whether a new connection, ready for `waited` seconds, is better left to a live process holding fewer
        connections than this one."""
        if self._mine is None:
            return False
        values, held = self._shared[:], self._shared[self._mine + _HELD]
        fewer = [slot for slot in range(0, len(values), 3)
                 if values[slot + _PID] and slot != self._mine and values[slot + _HELD] < held]
        if not fewer or waited >= WAIT_FOR_IDLE:
            return False
        idle = any(values[slot + _POLLING] for slot in fewer)
        return (idle or waited < WAIT_FOR_BUSY) and _alive_any(values[slot + _PID] for slot in fewer)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or its pid taken by a process of another user
        return False
    return True


def _alive_any(pids) -> bool:
    # A worker killed without leaving its slot must not keep the others waiting for it.
    return any(_alive(pid) for pid in pids)
