"""PatientSocket (api/connections.py): a served connection's writes wait for the client at most CLIENT_WAIT
at a time, not in all: an answer larger than the socket's buffers reaches a client that reads it slowly, and
is abandoned, as to a client gone, when the client stops reading. Reads that wait that long read as the end
of the stream."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from usm_engine.api import connections

# Each wait; the slow reader below never pauses longer than a tenth of it, even on a loaded machine.
WAIT = 1.0


@pytest.fixture
def pair(monkeypatch):
    monkeypatch.setattr(connections, "CLIENT_WAIT", WAIT)
    server_side, client_side = socket.socketpair()
    served = connections.PatientSocket.taking(server_side)
    served.setblocking(True)  # as gunicorn does before it reads a request
    yield served, client_side
    served.close()
    client_side.close()


def test_a_large_answer_reaches_a_slow_reader_however_long_it_takes_in_all(pair):
    served, client = pair
    answer = b"x" * (8 * 1024 * 1024)
    received = bytearray()

    def read_slowly():
        while len(received) < len(answer):
            received.extend(client.recv(1 << 20))
            time.sleep(WAIT / 20)

    reader = threading.Thread(target=read_slowly)
    began = time.monotonic()
    reader.start()
    served.sendall(answer)
    reader.join()
    assert bytes(received) == answer
    assert time.monotonic() - began > WAIT  # longer in all than one wait: socket.sendall's timeout would cut it


def test_an_answer_nobody_reads_is_abandoned_as_to_a_client_gone(pair):
    served, _client = pair
    with pytest.raises(BrokenPipeError):
        served.sendall(b"x" * (8 * 1024 * 1024))


def test_a_read_that_waits_too_long_reads_as_the_end_of_the_stream(pair):
    served, client = pair
    client.sendall(b"GET / HTTP/1.1\r\n")
    assert served.recv(1024) == b"GET / HTTP/1.1\r\n"
    began = time.monotonic()
    assert served.recv(1024) == b""
    assert time.monotonic() - began >= WAIT * 0.9
