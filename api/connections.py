"""Connections `usm serve`'s worker (api/serving_gate.py) is closing, waiting beside the others.

gunicorn closes a connection as RFC 9112 section 9.6 asks: the write side is shut first, and what the client
still sends is read and dropped until it closes its side, so that the kernel does not reset the connection
under the last answer. gunicorn's sync worker waits for that in the request, holding the whole process
until the client has read its answer and closed; here the process serves on meanwhile.
"""
from __future__ import annotations

import socket
import time

LINGER = 2.0  # seconds a closing connection waits for the client to close its side (as gunicorn's close)


class Closing:
    """Connections answered for the last time, their write side shut: the worker's select() watches them
    with its other sockets, and `read` drops what arrives until the client has closed."""

    def __init__(self) -> None:
        self._until: dict[socket.socket, float] = {}

    def add(self, sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the client is gone already
            sock.close()
            return
        sock.setblocking(False)
        self._until[sock] = time.monotonic() + LINGER

    def sockets(self) -> list[socket.socket]:
        return list(self._until)

    def deadline(self) -> float | None:
        return min(self._until.values(), default=None)

    def read(self, ready: list) -> None:
        """Drain the ready ones; close those whose client closed, or that waited their LINGER out."""
        now = time.monotonic()
        for sock, until in list(self._until.items()):
            done = until <= now
            if sock in ready:
                try:
                    done = done or not sock.recv(65536)
                except BlockingIOError:
                    pass
                except OSError:
                    done = True
            if done:
                del self._until[sock]
                sock.close()

    def close_all(self) -> None:
        for sock in self._until:
            sock.close()
        self._until.clear()
