"""The serving gate (api/serving_gate.py): one request at a time per process, except while one waits for
its script's sandbox; and a slow client's body is read before the gate is taken."""
from __future__ import annotations

import io
import threading

from usm_engine.api.serving_gate import GatedApp, ServingGate

WAIT = 5  # generous: only a broken gate waits this long (the threads below hand over in microseconds)


def test_a_request_waits_for_the_one_that_holds_the_gate():
    gate, order = ServingGate(), []
    first_in, second_tried = threading.Event(), threading.Event()

    def first():
        with gate.held():
            first_in.set()
            second_tried.wait(WAIT)
            order.append("first done")

    def second():
        first_in.wait(WAIT)
        second_tried.set()
        with gate.held():
            order.append("second ran")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert order == ["first done", "second ran"]


def test_a_request_waiting_for_its_script_lets_another_run_and_goes_on_after_it():
    gate, order = ServingGate(), []
    waiting, other_done = threading.Event(), threading.Event()

    def runaway():
        with gate.held():
            with gate.released():
                waiting.set()
                assert other_done.wait(WAIT), "the other request never ran while this one waited"
            order.append("runaway goes on")

    def other():
        waiting.wait(WAIT)
        with gate.held():
            order.append("other ran")
        other_done.set()

    threads = [threading.Thread(target=runaway), threading.Thread(target=other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert order == ["other ran", "runaway goes on"]


def test_released_outside_a_request_changes_nothing():
    gate = ServingGate()
    with gate.released():  # the timer worker and the command line wait for scripts outside any request
        pass
    with gate.held():  # the gate is still free, and whole
        pass


class _SlowBody(io.RawIOBase):
    """A body that notes whether it was read while the gate was held."""

    def __init__(self, gate: ServingGate, data: bytes) -> None:
        self.gate, self.data, self.read_under_gate = gate, data, None

    def read(self, size=-1):
        self.read_under_gate = self.gate._holding()
        data, self.data = self.data, b""
        return data


def test_the_body_is_read_before_the_gate_is_taken_and_given_to_the_app_whole():
    gate, seen = ServingGate(), {}
    body = _SlowBody(gate, b'{"a": 1}')

    def app(environ, start_response):
        seen["body"] = environ["wsgi.input"].read()
        seen["held"] = gate._holding()
        start_response("200 OK", [])
        return [b"ok"]

    environ = {"CONTENT_LENGTH": "8", "wsgi.input": body}
    assert GatedApp(app, max_body_bytes=100, gate=gate)(environ, lambda *_: None) == [b"ok"]
    assert body.read_under_gate is False and seen == {"body": b'{"a": 1}', "held": True}


def test_a_body_larger_than_accepted_is_left_unread_for_flask_to_refuse():
    gate = ServingGate()
    body = _SlowBody(gate, b"x" * 200)

    def app(environ, start_response):
        start_response("413 Request Entity Too Large", [])
        return [b""]

    GatedApp(app, max_body_bytes=100, gate=gate)({"CONTENT_LENGTH": "200", "wsgi.input": body}, lambda *_: None)
    assert body.read_under_gate is None  # never read: Flask refuses by the length alone
