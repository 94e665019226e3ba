"""Connection counts shared by `usm serve`'s processes (api/connection_counts.py): a process leaves a new
connection to one holding fewer, a long while if that one is waiting in poll() and about a request's time if it
is serving, and never to a process that has died. tests/e2e/test_connections.py watches real processes spread
their clients' connections."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from usm_engine.api.connection_counts import WAIT_FOR_BUSY, WAIT_FOR_IDLE, ConnectionCounts


@contextmanager
def other_process(counts: ConnectionCounts, held: int, polling: bool) -> Iterator[int]:
    """A forked process that takes a slot and says it holds `held` connections, alive until the block ends;
    gives its pid."""
    end_read, end_write = os.pipe()
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a server process of its own
        os.close(end_write)
        counts.take_slot()
        counts.holding(held)
        counts.polling(polling)
        os.write(ready_write, b"x")
        os.read(end_read, 1)  # until the parent closes its end
        os._exit(0)
    os.close(end_read)
    try:
        assert os.read(ready_read, 1) == b"x"
        yield pid
    finally:
        os.close(end_write)
        os.waitpid(pid, 0)  # gone without leaving its slot, as a killed worker does


def this_process(counts: ConnectionCounts, held: int) -> ConnectionCounts:
    counts.take_slot()
    counts.holding(held)
    return counts


def test_a_process_holding_more_leaves_a_new_connection_to_an_idle_one_holding_fewer_for_a_while():
    counts = ConnectionCounts()
    with other_process(counts, held=3, polling=True):
        this_process(counts, held=3)
        assert not counts.leave_to_others(0.0)  # the same number: whoever is free first takes it
        counts.holding(4)
        assert counts.leave_to_others(0.0)
        assert counts.leave_to_others(WAIT_FOR_BUSY * 2)  # the other is in poll(): it takes it at once
        assert not counts.leave_to_others(WAIT_FOR_IDLE)  # …unless something is wrong with it
        counts.holding(2)
        assert not counts.leave_to_others(0.0)  # this one holds the fewest


def test_a_new_connection_waits_about_a_request_for_a_busy_process_holding_fewer():
    counts = ConnectionCounts()
    with other_process(counts, held=1, polling=False):
        this_process(counts, held=5)
        assert counts.leave_to_others(0.0)
        assert not counts.leave_to_others(WAIT_FOR_BUSY)


def test_a_dead_process_is_not_waited_for_and_its_slot_is_taken_again():
    counts = this_process(ConnectionCounts(slots=2), held=6)
    with other_process(counts, held=0, polling=True):
        assert counts.leave_to_others(0.0)
    assert not counts.leave_to_others(0.0)  # it died holding its slot
    with other_process(counts, held=0, polling=True):  # the only slot left is the dead one's
        assert counts.leave_to_others(0.0)


def test_a_process_that_found_no_slot_or_left_takes_connections_as_they_come():
    counts = ConnectionCounts(slots=1)
    with other_process(counts, held=0, polling=True):
        this_process(counts, held=9)  # the only slot is the other's
        assert not counts.leave_to_others(0.0)
    counts = ConnectionCounts()
    with other_process(counts, held=0, polling=True):
        this_process(counts, held=9).leave_slot()
        assert not counts.leave_to_others(0.0)
