"""test-output/fuzz-summary.txt: the counts of the fuzz runs, one line per backend and run, so the SQLite
and the PostgreSQL run of CI both leave their numbers (each run replaces only its own lines)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

SUMMARY = Path(__file__).resolve().parents[2] / "test-output" / "fuzz-summary.txt"


def backend(database_url: str) -> str:
    return database_url.split(":", 1)[0].split("+", 1)[0]


def record(database_url: str, name: str, text: str) -> str:
    """Replace the line of (backend, name) with `text`; returns the line."""
    key = f"{backend(database_url)} {name}:"
    line = f"{key} {text}"
    SUMMARY.parent.mkdir(exist_ok=True)
    lines = SUMMARY.read_text().splitlines() if SUMMARY.exists() else []
    lines = [existing for existing in lines if existing and not existing.startswith(key)] + [line]
    SUMMARY.write_text("\n".join(sorted(lines)) + "\n")
    return line


def statuses(answers) -> str:
    counts = Counter(answers)
    return f"examples={len(answers)} " + " ".join(f"{status}={counts[status]}" for status in sorted(counts))
