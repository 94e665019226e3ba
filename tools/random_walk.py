"""Random walks through a running usm-engine, over the HTTP API only, as a new client would.

For every startable definition (GET /api/v1/definitions) and every seed, it starts cases and completes
each ready task, in each case and in the cases it hands off to, with random data that the task's own
form accepts (generated from the JSON Schema, checked with jsonschema before it is sent). At the end
every case driven must be completed, every case they handed off to must have started cleanly (running
or completed), no case may have an incident, and no response may be a 5xx.

Hand-offs are driven one generation deep (--depth): with random answers, every call hands off a risk or
an incident about as often as not, so following every generation would never end.

    .venv/bin/python tools/random_walk.py --url http://127.0.0.1:8000 --token change-me --seeds 10 --cases 3

Prints one line per definition and a total; exits 1 if anything went wrong (and says what).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import urllib.error
import urllib.request
from collections import Counter, defaultdict

from usm_engine.engine.conformance_forms import form_data

MAX_STEPS = 400   # per started case and the cases linked from it


class Client:
    def __init__(self, url: str, token: str):
        self.url, self.token = url.rstrip("/"), token
        self.server_errors: list[str] = []

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", **({"Content-Type": "application/json"} if data else {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        if status >= 500:
            self.server_errors.append(f"{method} {path}: {status} {raw[:300]!r}")
        return status, json.loads(raw) if raw else {}


# --- walking ---------------------------------------------------------------------------------------

def walk(client: Client, key: str, rng: random.Random, depth: int) -> tuple[list[dict], int, list[str]]:
    """Start one case and drive it and the cases it hands off to, `depth` generations deep; returns
    (cases, steps, problems)."""
    request = {"requester": "walker@example.org", "summary": f"a random walk on {key}",
               "agreement": {"service": "Workplace", "service_levels": {"P1": "PT4H", "P2": "PT8H", "P3": "PT24H",
                                                                         "P4": "PT72H"}}}
    status, case = client.call("POST", "/api/v1/cases", {"definition": key, "data": {"request": request}})
    if status != 201:
        return [], 0, [f"start: {status} {case.get('detail')}"]
    for step in range(MAX_STEPS):
        cases = linked_tree(client, case["id"], depth + 1)
        driven = [c for c, generation in cases if generation <= depth]
        ready = [(c, t) for c in driven if c["status"] == "running" for t in c["tasks"] if not t.get("topic")]
        if not ready:
            return [c for c, _ in cases], step, problems_of(cases, depth)
        owner, summary = rng.choice(ready)
        _, task = client.call("GET", f"/api/v1/tasks/{summary['id']}")
        status, answer = client.call("POST", f"/api/v1/tasks/{summary['id']}/complete",
                                     {"data": form_data(task["form"], rng)})
        if status != 200:
            return cases, step, [f"{owner['definition']} {summary['element_id']}: complete answered {status} "
                                 f"{answer.get('detail')}"]
    cases = [c for c, _ in linked_tree(client, case["id"], depth + 1)]
    return cases, MAX_STEPS, [f"not finished after {MAX_STEPS} tasks"]


def linked_tree(client: Client, root: str, generations: int) -> list[tuple[dict, int]]:
    """The case and the cases it handed off to, `generations` deep, each with its generation."""
    cases, pending = [], [(root, 0)]
    while pending:
        case_id, generation = pending.pop(0)
        _, case = client.call("GET", f"/api/v1/cases/{case_id}")
        cases.append((case, generation))
        if generation < generations:
            pending.extend((child, generation + 1) for child in case.get("child_cases") or [])
    return cases


def problems_of(cases: list[tuple[dict, int]], depth: int) -> list[str]:
    problems = []
    for case, generation in cases:
        if case.get("incident"):
            problems.append(f"{case['definition']} {case['id']}: incident: {case['incident'].get('message')}")
        elif case["status"] != "completed" and (generation <= depth or case["status"] != "running"):
            problems.append(f"{case['definition']} {case['id']}: ended {case['status']}, waiting for "
                            f"{case['waiting_for']}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True, help="a token with the system role (or admin)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--cases", type=int, default=3, help="cases started per definition and seed")
    parser.add_argument("--depth", type=int, default=1, help="generations of hand-offs driven to their end")
    parser.add_argument("--definition", action="append", help="only these keys (default: every startable one)")
    args = parser.parse_args(argv)

    client = Client(args.url, args.token)
    status, listed = client.call("GET", "/api/v1/definitions")
    if status != 200:
        print(f"GET /api/v1/definitions answered {status}: {listed.get('detail')}", file=sys.stderr)
        return 1
    keys = args.definition or [d["key"] for d in listed["items"] if d["startable"]]
    figures: dict[str, Counter] = defaultdict(Counter)
    problems: list[str] = []
    for seed in range(args.seeds):
        rng = random.Random(seed)
        for key in keys:
            for _ in range(args.cases):
                cases, steps, found = walk(client, key, rng, args.depth)
                counts = figures[key]
                counts["walks"] += 1
                counts["cases"] += len(cases)
                counts["tasks"] += steps
                counts["completed"] += sum(c["status"] == "completed" for c in cases)
                counts["incidents"] += sum(bool(c.get("incident")) for c in cases)
                problems += [f"seed {seed}, {key}: {problem}" for problem in found]
    print(f"{'definition':28} {'walks':>6} {'cases':>6} {'tasks':>6} {'completed':>10} {'incidents':>10}"
          f"   (cases: started and handed off to, {args.depth + 1} generations)")
    total = Counter()
    for key in keys:
        counts = figures[key]
        total.update(counts)
        print(f"{key:28} {counts['walks']:>6} {counts['cases']:>6} {counts['tasks']:>6} {counts['completed']:>10} "
              f"{counts['incidents']:>10}")
    print(f"{'all':28} {total['walks']:>6} {total['cases']:>6} {total['tasks']:>6} {total['completed']:>10} "
          f"{total['incidents']:>10}   5xx: {len(client.server_errors)}")
    for line in (problems + client.server_errors)[:20]:
        print("  " + line)
    return 1 if problems or client.server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
