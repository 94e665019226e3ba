"""Turns (api/serving_gate.py): one thread at a time serves in a server process; one that waits for its
script's sandbox lets another accept and serve meanwhile, and has its turn back before anyone accepts
again. The worker itself runs under a real `usm serve` in tests/e2e/test_runaway_scripts.py."""
from __future__ import annotations

import select
import threading

from usm_engine.api.serving_gate import Turns

WAIT = 5  # generous: only broken turns wait this long (the threads below hand over in microseconds)


def _run(*targets) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads), "a thread never got its turn"


def test_one_thread_at_a_time_accepts_and_serves():
    turns, order = Turns(), []
    first_in, second_tried = threading.Event(), threading.Event()

    def first():
        with turns.to_accept():
            first_in.set()
            second_tried.wait(WAIT)
            order.append("first done")

    def second():
        first_in.wait(WAIT)
        second_tried.set()
        with turns.to_accept():
            order.append("second served")

    _run(first, second)
    assert order == ["first done", "second served"]


def test_a_thread_waiting_for_its_script_lets_another_serve_then_goes_first():
    turns, order = Turns(), []
    waiting, other_in, latecomer_trying = threading.Event(), threading.Event(), threading.Event()

    def runaway():
        with turns.to_accept():
            with turns.waiting():
                waiting.set()
                assert other_in.wait(WAIT), "nobody served while this thread waited for its script"
            order.append("runaway goes on")

    def other():
        waiting.wait(WAIT)
        with turns.to_accept():
            other_in.set()
            # The returning thread asks for the turn through the wake-up pipe, as the worker's select sees it.
            assert select.select([turns.wake_fd], [], [], WAIT)[0] == [turns.wake_fd]
            assert turns.returning == 1
            turns.drain_wake_ups()
            assert latecomer_trying.wait(WAIT)
            order.append("other gives way")

    def latecomer():
        other_in.wait(WAIT)  # would accept a new connection: it must wait for the returning thread too
        latecomer_trying.set()
        with turns.to_accept():
            order.append("latecomer")

    _run(runaway, other, latecomer)
    assert order == ["other gives way", "runaway goes on", "latecomer"]
    assert not select.select([turns.wake_fd], [], [], 0)[0]  # nothing left to wake anyone


def test_waiting_outside_a_turn_changes_nothing():
    turns = Turns()
    with turns.waiting():  # the timer worker and the command line wait for scripts outside any request
        assert turns.returning == 0
    with turns.to_accept():  # the turn is still free, and whole
        assert turns.holding()
    assert not turns.holding()
