"""Issue 9 item 2: every path of every startable USM definition runs to its end (explorer.py).

In-process, on a SQLite file of its own whatever the suite's database (the explorer shares prefixes by
copying that file), spread over two processes. Afterwards one path per definition, picked at random
with a fixed seed, is replayed through the HTTP API and must end the same way. The number of paths per
definition is printed and written to test-output/definition-paths.txt.

`explore_all` takes the folder to deploy, so that test_roundtrip.py explores definitions/ after a
modeler's save the same way; what it found for a folder is kept for the rest of the session."""
from __future__ import annotations

import multiprocessing
import random
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from usm_engine.engine.clock import FixedClock
from tests.definitions.explorer import Explorer, HttpPort, replay
from tests.definitions.support import DEFINITIONS, deploy_definitions

REPORT = Path(__file__).resolve().parents[2] / "test-output" / "definition-paths.txt"


class Explored(NamedTuple):
    paths: list          # explorer.Path, each with its choices, how the case ended and its problems
    pruned: int
    seconds: float


_EXPLORED: dict[tuple[str, tuple[str, ...]], dict[str, Explored]] = {}


def _explore(job: tuple[str, str]):
    """In a worker process: a fresh database with the folder deployed, then one definition explored."""
    from usm_engine.api.cli import collect_files
    from usm_engine.engine.service import Engine, EngineSettings

    source, key = job
    started = time.monotonic()
    clock = FixedClock()
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(EngineSettings(f"sqlite:///{folder}/explore.db"), clock=clock)
        engine.migrate()
        engine.deploy(collect_files((source,)), "designer")
        definitions = {d["key"]: engine.get_definition(d["key"]) for d in engine.list_definitions()}
        paths, pruned = Explorer(engine, clock, definitions).explore(key)
        engine.close()
    return key, paths, pruned, time.monotonic() - started


def explore_all(keys: list[str], folder: Path = DEFINITIONS) -> dict[str, Explored]:
    """Every path of each definition in `keys`, with `folder` deployed, over two processes. Kept for the
    session: exploring the same folder and keys again returns the first result."""
    cached = (str(folder.resolve()), tuple(sorted(keys)))
    if cached not in _EXPLORED:
        # The widest definitions first, so that neither process is left with a long one at the end.
        keys = sorted(keys, key=lambda k: (not k.startswith(("usm-recover", "usm-wf3", "usm-improve")), k))
        jobs = [(cached[0], key) for key in keys]
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            _EXPLORED[cached] = {key: Explored(paths, pruned, seconds)
                                 for key, paths, pruned, seconds in pool.imap_unordered(_explore, jobs)}
    return _EXPLORED[cached]


def startable_keys(client) -> list[str]:
    listed = client.get("/api/v1/definitions", headers={"Authorization": "Bearer admin-token"}).get_json()["items"]
    return [d["key"] for d in listed if d["startable"]]


# Over a thousand paths on two processes: about five minutes on a quiet two-core machine, more on a loaded
# one, so the suite's 300 s per test (meant to catch hangs) is too short here; 900 s still catches a hang.
@pytest.mark.timeout(900)
def test_every_path_of_every_startable_definition_ends(app_factory):
    clock = FixedClock()
    app = app_factory(clock=clock)
    client = app.test_client()
    deploy_definitions(client)
    startable = startable_keys(client)
    assert len(startable) == 15  # the five processes, eight workflows, the service desk and escalations

    started = time.monotonic()
    results = explore_all(startable)
    seconds = time.monotonic() - started

    lines = [f"{'definition':28} {'paths':>6} {'pruned':>7} {'seconds':>8}"]
    for key in sorted(results):
        paths, pruned, spent = results[key]
        lines.append(f"{key:28} {len(paths):>6} {pruned:>7} {spent:>8.1f}")
    total = sum(len(paths) for paths, _, _ in results.values())
    lines.append(f"{'all':28} {total:>6} {sum(p for _, p, _ in results.values()):>7} {seconds:>8.1f} (wall clock)")
    report = "\n".join(lines)
    print("\npaths of the startable definitions (each loop at most twice)\n" + report)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(report + "\n")

    failures = [(key, path.choices, path.problems) for key, (paths, _, _) in results.items()
                for path in paths if path.problems]
    assert not failures, f"{len(failures)} paths did not end well; the first: {failures[0]}"
    assert all(paths for paths, _, _ in results.values()), report

    # A sample through the HTTP API: the same choices take the same way to the same end.
    sample = random.Random(9)
    port = HttpPort(client, app, clock)
    for key in sorted(results):
        path = sample.choice(results[key][0])
        problems = replay(port, key, path)
        assert not problems, (key, [(c.element_id, c.decisions, c.timer) for c in path.choices], problems)
