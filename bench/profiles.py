"""Turn profiles of the complete-task path into small tables: where one completion spends its time.

Two sources:
  * cProfile files (.prof) of the in-process engine loop (`python -m bench.run --profile`);
  * py-spy "raw" (collapsed stack) files of the gunicorn workers (`python -m bench.run --py-spy`),
    or of any process, e.g.  py-spy record -f raw --nolineno -o stacks.txt -- python -m bench.run ...

    python -m bench.profiles bench/results/latest.server.txt      # print the tables of a stack file
    python -m bench.profiles bench/results/latest.engine.prof

Frames are matched by function name (bare or qualified, e.g. CaseWork.save) and a
fragment of the file path, so the tables survive code moving between engine modules.
"""
from __future__ import annotations

import argparse
import pstats
import re
import sys
from collections import Counter
from pathlib import Path

# (label, [(function or None for any, file fragment)]) in priority order: a sample belongs to the
# first step with a matching frame anywhere in its stack.
ENGINE_STEPS = [
    ("SQLite: wait for the write lock (BEGIN IMMEDIATE)", [("_begin", "engine/database.py")]),
    ("DB write: COMMIT", [("_commit_impl", "sqlalchemy/engine/base.py"), ("do_commit", "sqlalchemy/")]),
    ("DB write: UPDATE case row", [("update_case", "engine/store.py")]),
    ("DB write: end tasks (UPDATE tasks)", [("end_tasks", "engine/store.py")]),
    ("DB write: insert tasks", [("insert_tasks", "engine/store.py")]),
    ("DB write: insert audit events", [("insert_events", "engine/store.py")]),
    ("DB reads: task, case, ready tasks", [("get_task", "engine/store.py"), ("get_case", "engine/store.py"),
                                           ("ready_tasks_of_cases", "engine/store.py")]),
    ("serialize instance (workflow_to_dict + json.dumps)", [("serialized_state", "engine/")]),
    ("audit trail (record, diff, seal)", [(None, "engine/audit.py"), ("record_outcome", "engine/")]),
    ("restore instance (json.loads + workflow_from_dict)", [("restore", "engine/case_reading.py")]),
    ("engine steps + outcome (runner.advance)", [("advance", "engine/runner.py")]),
    ("task.run (the completed user task)", [("run", "SpiffWorkflow/task.py")]),
    ("form check", [(None, "engine/forms.py")]),
    ("response dict (case_representation)", [("case_representation", "engine/")]),
    ("SQLAlchemy connection checkout/return", [(None, "sqlalchemy/pool/")]),
    ("other SQLAlchemy (connect, begin, autobegin)", [(None, "sqlalchemy/")]),
    ("other engine code in complete_task", [("complete_task", "engine/")]),
]

HTTP_STEPS = ENGINE_STEPS + [
    ("API: parse + validate the JSON body", [("json_body", "api/http.py")]),
    ("API: authenticate the token", [("authenticate", "api/auth.py")]),
    ("API: jsonify the case", [("case_response", "api/"), ("jsonify", "flask/")]),
    ("Flask/Werkzeug: routing, request/response objects, hooks", [(None, "flask/"), (None, "werkzeug/")]),
    ("gunicorn: read/parse the request, write the response", [(None, "gunicorn/")]),
]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _parse_frame(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    return (match["func"], match["file"]) if match else (frame.strip(), "")


def _func_matches(func: str, wanted: str | None) -> bool:
    return wanted is None or func == wanted or func.endswith("." + wanted)


def _frame_matches(frame: tuple[str, str], rules) -> bool:
    func, file = frame
    return any(fragment in file and _func_matches(func, wanted) for wanted, fragment in rules)


def read_stacks(path: Path) -> Counter:
    """py-spy raw format: 'frame;frame;...;leaf COUNT' per line, outermost frame first."""
    stacks: Counter = Counter()
    for line in Path(path).read_text(errors="replace").splitlines():
        line = line.rstrip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        try:
            stacks[tuple(_parse_frame(f) for f in stack.split(";"))] += int(count)
        except ValueError:
            continue
    return stacks


def stack_breakdown(stacks: Counter, base: tuple[str | None, str], steps, top: int = 10) -> dict:
    """Shares of the samples whose stack holds the `base` frame: per step (exclusive) and per function
    (inclusive: a function counts once per sample however deep it recurses)."""
    base_rules = [base]
    total = sum(stacks.values())
    inside = {stack: count for stack, count in stacks.items() if any(_frame_matches(f, base_rules) for f in stack)}
    n = sum(inside.values())
    per_step: Counter = Counter()
    per_function: Counter = Counter()
    for stack, count in inside.items():
        for label, rules in steps:
            if any(_frame_matches(f, rules) for f in stack):
                per_step[label] += count
                break
        else:
            per_step["other"] += count
        seen = set()
        started = False
        for func, file in stack:
            started = started or _frame_matches((func, file), base_rules)
            if started and (func, file) not in seen:
                seen.add((func, file))
                per_function[f"{func} ({file})"] += count
    order = [label for label, _ in steps] + ["other"]
    return {"total_samples": total, "base_samples": n,
            "steps": [(label, per_step[label] / n) for label in order if per_step.get(label)] if n else [],
            "functions": [(name, count / n) for name, count in per_function.most_common(top)] if n else []}


def stack_tables(path: Path, base=("handle_request", "gunicorn/"), steps=HTTP_STEPS, top: int = 10) -> str:
    result = stack_breakdown(read_stacks(path), base, steps, top)
    if not result["base_samples"]:
        return f"(no samples inside {base[0]} in {path})"
    lines = [f"{result['base_samples']} of {result['total_samples']} samples were inside `{base[0]}`.", "",
             "| step (exclusive) | share |", "|---|---:|"]
    lines += [f"| {label} | {share:.1%} |" for label, share in result["steps"]]
    lines += ["", f"Top {top} functions by inclusive share:", "", "| function | share |", "|---|---:|"]
    lines += [f"| `{name}` | {share:.1%} |" for name, share in result["functions"]]
    return "\n".join(lines)


# --- cProfile ----------------------------------------------------------------------------------------

_ROOT = str(Path(__file__).resolve().parent.parent) + "/"


def _short(filename: str) -> str:
    for marker in ("site-packages/", _ROOT, "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def cprofile_tables(path: Path, root: str = "complete_task", top: int = 10) -> str:
    """Top functions by cumulative time as a share of `root` (the profiled command), and the engine
    steps (cumulative, so nested steps overlap; cProfile inflates pure-Python call overhead)."""
    stats = pstats.Stats(str(path)).stats
    roots = [v for (file, _line, name), v in stats.items() if name == root and "engine/" in file]
    if not roots:
        return f"(no {root} in {path})"
    total = max(v[3] for v in roots)
    rows = sorted(((v[3], v[2], v[1], _short(file), line, name) for (file, line, name), v in stats.items()
                   if not name.startswith("<") and v[3] <= total), reverse=True)  # callers of the root: out
    lines = [f"Top {top} functions by cumulative time, as a share of {root} ({total:.2f} s under cProfile):", "",
             "| function | calls | cumulative share | own time share |", "|---|---:|---:|---:|"]
    for cum, own, calls, file, line, name in rows[:top]:
        lines.append(f"| `{file}:{line}({name})` | {calls} | {cum / total:.1%} | {own / total:.1%} |")
    lines += ["", "Engine steps (cumulative share of complete_task):", "", "| step | share |", "|---|---:|"]
    for label, rules in ENGINE_STEPS:
        if any(wanted in (root, "run") for wanted, _ in rules):
            continue  # the root itself; task.run also runs inside advance, so its cumulative time misleads
        cum = sum(v[3] for (file, _line, name), v in stats.items()
                  if any(fragment in file and wanted is not None and name == wanted for wanted, fragment in rules))
        if cum:
            lines.append(f"| {label} | {cum / total:.1%} |")
    sql = sum(v[3] for (file, _l, name), v in stats.items()
              if file == "~" and ("sqlite3.Cursor" in name or "sqlite3.Connection" in name
                                  or "psycopg" in name))
    lines += ["", f"Inside the SQLite library itself (sqlite3 execute/commit C calls): {sql / total:.1%}; "
                  "the rest of the DB steps is SQLAlchemy building, caching, compiling and executing statements."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profiles", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="a .prof (cProfile) or a py-spy raw stack file")
    parser.add_argument("--base", default=None,
                        help="py-spy: the frame that delimits a request, as FUNCTION@FILEFRAGMENT "
                             "(default handle_request@gunicorn/; use complete_task@engine/ for an in-process run)")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    if args.file.suffix == ".prof":
        print(cprofile_tables(args.file, top=args.top))
    else:
        base = tuple(args.base.split("@", 1)) if args.base else ("handle_request", "gunicorn/")
        print(stack_tables(args.file, base=base, top=args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
