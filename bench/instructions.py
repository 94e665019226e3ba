"""Instructions per task completion, in-process on SQLite, counted by valgrind: a figure that does not move with
the machine's speed, so two versions of the code can be compared without alternating runs on a machine whose
speed drifts by a third within an hour (BENCHMARKS.md).

    python -m bench.instructions                      # the engine as configured by default
    python -m bench.instructions --cache-mb 0         # without the live workflows (engine/workflow_cache.py)

Runs bench/chain.bpmn (10 user tasks per case) through Engine.start_case and complete_task under
`valgrind --tool=callgrind` twice, with a few cases and with more: the difference, divided by the difference
in completions, leaves out start-up and imports. It counts this process's user-space instructions (Python,
SQLite, orjson...), not the kernel's, and, like the engine path of bench.run, includes a tenth of a case start
per completion. Needs valgrind (Debian: apt-get install valgrind); a run takes a minute or two.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_COLLECTED = re.compile(r"Collected : (\d+)")


def drive(cases: int, cache_mb: int) -> int:
    """The body of the counted process: start `cases` cases and complete every task; returns completions."""
    from usm_engine.engine.service import Engine, EngineSettings

    from .run import ACTOR, PROCESS_KEY, _allow_all, bench_files, task_data

    folder = tempfile.mkdtemp(prefix="usm-instructions-")
    engine = Engine(EngineSettings(f"sqlite:///{folder}/bench.db", workflow_cache_bytes=cache_mb * 1024 * 1024))
    try:
        engine.migrate()
        engine.deploy(bench_files(), ACTOR)
        completions = 0
        for _ in range(cases):
            case, _created = engine.start_case(PROCESS_KEY, ACTOR)
            while case["tasks"]:
                case = engine.complete_task(case["tasks"][0]["id"], task_data(completions), ACTOR, _allow_all)
                completions += 1
        return completions
    finally:
        engine.close()
        shutil.rmtree(folder, ignore_errors=True)


def counted(cases: int, cache_mb: int) -> tuple[int, int]:
    """(instructions, completions) of one run under callgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("bench.instructions needs valgrind (apt-get install valgrind)")
    run = subprocess.run([valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
                          "bench.instructions", "--drive", str(cases), "--cache-mb", str(cache_mb)],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, check=True)
    return int(_COLLECTED.search(run.stderr).group(1)), int(run.stdout.split()[-1])  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10, help="cases in the larger run (the smaller has 2)")
    parser.add_argument("--cache-mb", type=int, default=16, help="USM_WORKFLOW_CACHE_MB for the engine")
    parser.add_argument("--drive", type=int, help=argparse.SUPPRESS)  # the process valgrind counts
    args = parser.parse_args()
    if args.drive is not None:
        print(drive(args.drive, args.cache_mb))
        return
    small, large = counted(2, args.cache_mb), counted(args.cases, args.cache_mb)
    per = (large[0] - small[0]) / (large[1] - small[1])
    print(f"{per / 1e6:.2f} M instructions per completion (cache {args.cache_mb} MB; "
          f"{large[1] - small[1]} completions between runs of {small[1]} and {large[1]})")


if __name__ == "__main__":
    main()
