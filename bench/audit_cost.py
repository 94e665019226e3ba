"""What audit writing adds to a task completion: the engine in-process on SQLite, with and without the
trail (recorder callbacks, hash chain, event inserts), in one run, alternating rounds.

    python -m bench.audit_cost [--completions 3000] [--rounds 3]

Run by hand; the figure goes in BENCHMARKS.md. "Without" patches the audit out of the engine for the
measurement only: it is not a mode the engine offers.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from usm_engine.engine import audit, case_start, case_work, store
from usm_engine.engine.service import Engine
from usm_engine.engine.settings import EngineSettings

CHAIN = Path(__file__).with_name("chain.bpmn")


@contextmanager
def without_audit():
    def seal(recorder, seq, prev_hash):
        return [], seq, prev_hash

    with mock.patch.object(audit.Recorder, "add", lambda *a, **k: None), \
            mock.patch.object(audit.Recorder, "will_run", lambda *a, **k: None), \
            mock.patch.object(audit.Recorder, "did_run", lambda *a, **k: None), \
            mock.patch.object(case_start, "seal", seal), \
            mock.patch.object(case_work, "seal", seal), \
            mock.patch.object(store, "insert_events", lambda *a, **k: None):
        yield


def run(engine: Engine, completions: int) -> float:
    """Seconds per completion, completing the chain's tasks case after case."""
    done, elapsed = 0, 0.0
    while done < completions:
        case, _ = engine.start_case("bench_chain", "bench")
        while case["tasks"] and done < completions:
            started = time.perf_counter()
            case = engine.complete_task(case["tasks"][0]["id"], {}, "bench", lambda lane: True)
            elapsed += time.perf_counter() - started
            done += 1
    return elapsed / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completions", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        engine = Engine(EngineSettings(f"sqlite:///{scratch}/audit-cost.db"))
        engine.migrate()
        engine.deploy([("chain.bpmn", CHAIN.read_bytes())], "bench")
        run(engine, 200)  # warm the caches
        with_trail, without_trail = [], []
        for _ in range(options.rounds):
            with_trail.append(run(engine, options.completions))
            with without_audit():
                without_trail.append(run(engine, options.completions))
        engine.close()
    on, off = statistics.median(with_trail), statistics.median(without_trail)
    print(f"| engine + SQLite, with the audit trail | {1 / on:.0f}/s | {on * 1000:.2f} ms |")
    print(f"| engine + SQLite, trail patched out | {1 / off:.0f}/s | {off * 1000:.2f} ms |")
    print(f"audit writing adds {100 * (on - off) / off:.1f}% to a completion "
          f"(median of {options.rounds} alternating rounds of {options.completions})")


if __name__ == "__main__":
    main()
