"""`usm serve`'s connections (api/serving_gate.py, api/connections.py), as HTTP clients use them: a client that
keeps its connection alive is served on it request after request; one that asks to close, or leaves its
connection idle, has it closed; one that connects and sends nothing, or sends two requests at once, does not
hold up anybody else; one that stops in the middle of its request holds its process for CLIENT_WAIT at most.

The server runs one process with a few threads (the helper's setting), so a connection that held the
process would hold every other client too.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from usm_engine.api.connections import CLIENT_WAIT
from tests.conftest import APPROVAL, FIXTURES
from tests.e2e.server import Server

pytestmark = pytest.mark.e2e

# gunicorn's --keep-alive default, which `usm serve` keeps: seconds an idle kept-alive connection stays open.
KEEP_ALIVE = 2
# How long a test waits for what should happen within KEEP_ALIVE or at once: generous, because CI is a loaded
# 2-core machine; a server that holds a connection (the failure looked for) never gets there at all.
PATIENCE = 15


@pytest.fixture
def server(tmp_path, database_url):
    workdir = tmp_path
    definitions = workdir / "definitions"
    definitions.mkdir()
    for name in APPROVAL:
        shutil.copy(FIXTURES / name, definitions / name)
    running = Server(workdir, database_url, "e2e-admin", timer_worker=False).start()
    yield running
    running.stop()
    assert "Traceback" not in running.log()


def _call(conn: http.client.HTTPConnection, method: str, path: str, body=None) -> tuple[http.client.HTTPResponse, dict]:
    headers = {"Authorization": "Bearer e2e-admin"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    return response, json.loads(response.read())


def _read_until_closed(sock: socket.socket, within: float = PATIENCE) -> bytes:
    """Everything the server sends until it closes the connection; fails if it has not within `within` s."""
    sock.settimeout(within)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _answers(sock: socket.socket, count: int) -> list[tuple[int, str, dict]]:
    """Read `count` answers off one connection: status, head (lower case) and JSON body of each, the body
    taken by its Content-Length."""
    if sock.gettimeout() is None:
        sock.settimeout(PATIENCE)
    buffer, answers = b"", []
    while len(answers) < count:
        head, separator, rest = buffer.partition(b"\r\n\r\n")
        if separator:
            lines = head.decode("latin-1").split("\r\n")
            length = int(next(line.split(":", 1)[1] for line in lines if line.lower().startswith("content-length")))
            if len(rest) >= length:
                answers.append((int(lines[0].split()[1]), head.decode("latin-1").lower(), json.loads(rest[:length])))
                buffer = rest[length:]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {len(answers)} of {count} answers"
        buffer += chunk
    return answers


def test_a_kept_alive_connection_carries_a_whole_case(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=PATIENCE)
    try:
        response, case = _call(conn, "POST", "/api/v1/cases", {"definition": "approval"})
        assert response.status == 201 and not response.will_close
        sock = conn.sock
        response, page = _call(conn, "GET", f"/api/v1/tasks?case={case['id']}")
        assert response.status == 200 and not response.will_close
        response, case = _call(conn, "POST", f"/api/v1/tasks/{page['items'][0]['id']}/complete",
                               {"data": {"item": "desk", "quantity": 1}})
        assert response.status == 200 and [t["name"] for t in case["tasks"]] == ["Decide"]
        response, case = _call(conn, "POST", f"/api/v1/tasks/{case['tasks'][0]['id']}/complete",
                               {"data": {"approved": False}})
        assert response.status == 200 and case["status"] == "completed"
        # a refusal keeps the connection too
        response, problem = _call(conn, "POST", f"/api/v1/tasks/{page['items'][0]['id']}/complete",
                                  {"data": {"item": "desk", "quantity": 1}})
        assert response.status == 409 and not response.will_close
        assert conn.sock is sock  # every answer came on the first connection: none was closed under it
    finally:
        conn.close()


def test_a_client_that_asks_to_close_gets_its_answer_then_the_connection_closes(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" in answer.lower()


def test_an_idle_kept_alive_connection_is_closed_and_others_are_served_meanwhile(server):
    with socket.create_connection(("127.0.0.1", server.port)) as idle:
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        [(status, head, _)] = _answers(idle, 1)
        assert status == 200 and "connection: close" not in head
        asked = time.monotonic()
        assert server.request("GET", "/healthz")[0] == 200  # another client, while this one idles
        assert _read_until_closed(idle) == b""  # closed by the server, without a word
        assert time.monotonic() - asked >= KEEP_ALIVE - 0.5  # not before its time


def test_a_client_that_connects_and_says_nothing_holds_up_nobody(server):
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(6)]  # more than the threads
    try:
        time.sleep(0.2)  # the server has accepted them by now
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=PATIENCE)
        response, body = _call(conn, "GET", "/api/v1/definitions")
        conn.close()
        assert response.status == 200 and [d["key"] for d in body["items"]] == ["approval"]
        for sock in silent:  # and they are let go like idle ones
            assert _read_until_closed(sock) == b""
    finally:
        for sock in silent:
            sock.close()


def test_two_requests_sent_at_once_are_both_answered_in_order(server):
    request = (b"GET /api/v1/definitions/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Authorization: Bearer e2e-admin\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(request % b"approval" + request % b"no-such-definition")
        (first, _, definition), (second, _, _problem) = _answers(sock, 2)
    assert (first, definition["key"], second) == (200, "approval", 404)


def test_a_thousand_silent_connections_do_not_stop_the_server(server):
    """More connections than select() could watch (descriptors past 1024) and than a process keeps (gunicorn's
    --worker-connections, 1000): the server takes what it can, lets the silent ones go after the keep-alive
    time, and answers a real client meanwhile or right after."""
    silent = []
    try:
        for _ in range(1100):
            silent.append(socket.create_connection(("127.0.0.1", server.port)))
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=PATIENCE)
        response, body = _call(conn, "GET", "/api/v1/definitions")
        conn.close()
        assert response.status == 200 and [d["key"] for d in body["items"]] == ["approval"]
        assert server.request_ok()
    finally:
        for sock in silent:
            sock.close()
    assert server.request_ok()


def test_a_request_whose_head_stops_arriving_lets_the_process_go(server):
    with socket.create_connection(("127.0.0.1", server.port)) as stalled:
        stalled.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        asked = time.monotonic()
        assert _read_until_closed(stalled, within=CLIENT_WAIT + PATIENCE) == b""  # dropped as a client gone
        assert time.monotonic() - asked >= CLIENT_WAIT - 0.5
        assert server.request_ok()


def test_a_request_whose_body_stops_arriving_is_answered_400(server):
    body = json.dumps({"definition": "approval", "business_key": "cut short"}).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as stalled:
        stalled.sendall(b"POST /api/v1/cases HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer e2e-admin\r\n"
                        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (len(body) + 40) + body)
        stalled.settimeout(CLIENT_WAIT + PATIENCE)
        [(status, _head, problem)] = _answers(stalled, 1)
    assert status == 400 and "ended after" in problem["detail"] and "Content-Length" in problem["detail"], problem
    assert server.request("GET", "/api/v1/cases?business_key=cut%20short")[1]["items"] == []  # nothing started


@pytest.fixture
def two_processes(tmp_path, database_url):
    running = Server(tmp_path, database_url, "e2e-admin", timer_worker=False, workers=2).start()
    # /healthz answers as soon as one process serves; the other may still be loading the app
    deadline = time.monotonic() + PATIENCE
    while running.log().count("Serving with") < 2:
        assert time.monotonic() < deadline, f"the second process never started serving:\n{running.log()}"
        time.sleep(0.05)
    yield running
    running.stop()
    assert "Traceback" not in running.log()


def _connections_per_process(master: int, port: int) -> list[int]:
    """How many established connections to `port` each process forked by `master` holds (read off /proc)."""
    children = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()
                and _parent_of(entry) == master]
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                established.add(fields[9])  # its inode
    counts = []
    for pid in children:
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        counts.append(len(inodes & established))
    return sorted(counts)


def _parent_of(process: Path) -> int | None:
    try:
        return int((process / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_kept_alive_connections_are_spread_evenly_over_the_processes(two_processes):
    # Which process accepts a connection is a race (each would take it); a few clients that keep their
    # connections, as a backend's pool does, must not end up 5 / 3 or worse, because a process serves one
    # request at a time and only its own connections (api/connection_counts.py). Connected one after another,
    # each answered before the next connects, and left to the race, 8 connections split 6 / 2 or 7 / 1 here:
    # the process that has just answered is the one awake to take the next.
    conns = [http.client.HTTPConnection("127.0.0.1", two_processes.port, timeout=PATIENCE) for _ in range(8)]
    try:
        for conn in conns:
            response, _body = _call(conn, "GET", "/healthz")
            assert response.status == 200 and not response.will_close
        assert _connections_per_process(two_processes.process.pid, two_processes.port) == [4, 4]
        for conn in conns:  # every one still served, on the connection it kept
            sock = conn.sock
            response, _body = _call(conn, "GET", "/healthz")
            assert response.status == 200 and conn.sock is sock
    finally:
        for conn in conns:
            conn.close()
