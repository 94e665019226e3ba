"""Connection counts shared by `usm serve`'s processes (api/connection_counts.py): a process leaves a new
connection to one holding fewer, a long while if that one is waiting in poll() and about a request's time if it
is serving, and never to a process that has died. tests/e2e/test_connections.py watches real processes spread
their clients' connections."""
from __future__ import annotations

import os

from usm_engine.api.connection_counts import WAIT_FOR_BUSY, WAIT_FOR_IDLE, ConnectionCounts


def _in_child(counts: ConnectionCounts, held: int, polling: bool) -> int:
    """Fork a process that takes a slot, says it holds `held` connections, and stays alive until told to go;
    returns its pid. The parent closes the pipe to end it."""
    read, write = os.pipe()
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a server process of its own
        os.close(write)
        counts.take_slot()
        counts.holding(held)
        counts.polling(polling)
        os.write(ready_write, b"x")
        os.read(read, 1)  # until the parent closes its end
        os._exit(0)
    os.close(read)
    assert os.read(ready_read, 1) == b"x"
    _children[pid] = write
    return pid


_children: dict[int, int] = {}


def _end(pid: int) -> None:
    os.close(_children.pop(pid))
    os.waitpid(pid, 0)


def test_a_process_holding_more_leaves_a_new_connection_to_an_idle_one_holding_fewer_for_a_while():
    counts = ConnectionCounts()
    other = _in_child(counts, held=3, polling=True)
    try:
        counts.take_slot()
        counts.holding(3)
        assert not counts.leave_to_others(0.0)  # the same number: whoever is free first takes it
        counts.holding(4)
        assert counts.leave_to_others(0.0)
        assert counts.leave_to_others(WAIT_FOR_BUSY * 2)  # the other is in poll(): it takes it at once
        assert not counts.leave_to_others(WAIT_FOR_IDLE)  # …unless something is wrong with it
        counts.holding(2)
        assert not counts.leave_to_others(0.0)  # this one holds the fewest
    finally:
        _end(other)
        counts.leave_slot()


def test_a_new_connection_waits_about_a_request_for_a_busy_process_holding_fewer():
    counts = ConnectionCounts()
    other = _in_child(counts, held=1, polling=False)
    try:
        counts.take_slot()
        counts.holding(5)
        assert counts.leave_to_others(0.0)
        assert not counts.leave_to_others(WAIT_FOR_BUSY)
    finally:
        _end(other)
        counts.leave_slot()


def test_a_dead_process_is_not_waited_for_and_its_slot_is_taken_again():
    counts = ConnectionCounts(slots=2)
    counts.take_slot()
    counts.holding(6)
    dead = _in_child(counts, held=0, polling=True)
    assert counts.leave_to_others(0.0)
    _end(dead)  # gone without leaving its slot, as a killed worker does
    assert not counts.leave_to_others(0.0)
    replacement = _in_child(counts, held=0, polling=True)  # the only slot left is the dead one's
    try:
        assert counts.leave_to_others(0.0)
    finally:
        _end(replacement)
        counts.leave_slot()


def test_a_process_that_found_no_slot_or_left_takes_connections_as_they_come():
    counts = ConnectionCounts(slots=1)
    other = _in_child(counts, held=0, polling=True)
    try:
        counts.take_slot()  # the only slot is the other's
        counts.holding(9)
        assert not counts.leave_to_others(0.0)
    finally:
        _end(other)
    counts = ConnectionCounts()
    other = _in_child(counts, held=0, polling=True)
    try:
        counts.take_slot()
        counts.holding(9)
        counts.leave_slot()
        assert not counts.leave_to_others(0.0)
    finally:
        _end(other)

