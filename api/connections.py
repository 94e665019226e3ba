"""How `usm serve`'s worker (api/serving_gate.py) treats a connection's client: waiting for it at most so long
at a time while it serves its request, and not at all while it closes.

A client that stops in the middle of its request, or stops reading the answer, would hold the whole
process, which serves one request at a time: gunicorn reads and writes a connection blocking. Here each read
or write waits at most CLIENT_WAIT seconds: a request whose head stopped arriving is dropped as if the client
had gone, one whose body stopped is answered 400 (the body ended before its Content-Length), and an answer
nobody reads is abandoned.

gunicorn closes a connection as RFC 9112 section 9.6 asks: the write side is shut first, and what the client
still sends is read and dropped until it closes its side, so that the kernel does not reset the connection
under the last answer. gunicorn's sync worker waits for that in the request, holding the whole process
until the client has read its answer and closed; here the process serves on meanwhile.
"""
from __future__ import annotations

import errno
import socket
import time

LINGER = 2.0  # seconds a closing connection waits for the client to close its side (as gunicorn's close)
CLIENT_WAIT = 10.0  # seconds a read or write of a request being served waits for the client


class PatientSocket(socket.socket):
    """A client connection whose blocking reads and writes wait at most CLIENT_WAIT seconds each. gunicorn
    makes a connection blocking before it reads a request from it: here that means blocking with this timeout.
    A read that times out reads as the end of the stream, which gunicorn and Werkzeug already answer (a
    request cut short); a write that times out, as a client that has gone."""

    @classmethod
    def taking(cls, sock: socket.socket) -> "PatientSocket":
        return cls(sock.family, sock.type, sock.proto, fileno=sock.detach())

    def setblocking(self, flag: bool) -> None:
        self.settimeout(CLIENT_WAIT if flag else 0.0)

    def recv(self, size: int, flags: int = 0) -> bytes:
        try:
            return super().recv(size, flags)
        except TimeoutError:
            return b""

    def sendall(self, data, flags: int = 0) -> None:
        # send() by send(), not socket.sendall(), whose timeout bounds the whole answer: a large export to a
        # slow client may take long, as long as the client keeps reading.
        view = memoryview(data).cast("B")
        while view:
            try:
                view = view[self.send(view, flags):]
            except TimeoutError:
                raise BrokenPipeError(errno.EPIPE, f"the client read nothing for {CLIENT_WAIT:.0f} s") from None


class Closing:
    """Connections answered for the last time, their write side shut: the worker's poll() watches them
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
