"""Bulk export streams: memory stays flat however many events there are."""
from __future__ import annotations

import io
import json
import tracemalloc
from datetime import datetime

from sqlalchemy import insert

from usm_engine.engine.schema import events


def add_events(engine, count: int, chain_prefix: str) -> None:
    rows = []
    for number in range(count):
        rows.append({"chain": f"{chain_prefix}-{number // 100}", "seq": number % 100 + 1,
                     "at": datetime(2026, 1, 1), "type": "task_completed", "actor": "alice",
                     "element_id": "Activity_Classify", "element_name": "Classify", "lane": "Service desk",
                     "definition": "usm-recover", "version": 1, "definition_hash": "a" * 64,
                     "data_changes": json.dumps({"note": [None, "x" * 200]}), "details": "{}", "hash": b"\xff" * 32})
        if len(rows) == 5000:
            with engine.db.writer.begin() as conn:
                conn.execute(insert(events), rows)
            rows = []
    if rows:
        with engine.db.writer.begin() as conn:
            conn.execute(insert(events), rows)


def peak_while_exporting(engine) -> tuple[int, int]:
    sink = io.StringIO()
    exported = 0
    tracemalloc.start()
    try:
        for event in engine.export_events():
            sink.write(json.dumps(event))
            exported += 1
            if sink.tell() > 1_000_000:  # a file or pipe would not keep what it was given either
                sink.seek(0)
                sink.truncate()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return exported, peak


def test_export_memory_does_not_grow_with_the_number_of_events(engine):
    add_events(engine, 4_000, "small")
    small_count, small_peak = peak_while_exporting(engine)
    add_events(engine, 36_000, "large")
    large_count, large_peak = peak_while_exporting(engine)
    assert (small_count, large_count) == (4_000, 40_000)
    # Ten times the events, about the same memory: the export holds a batch, never the whole trail
    # (40,000 events as dicts would take about 100 MB).
    assert large_peak < small_peak * 1.5 + 2_000_000, (small_peak, large_peak)
    assert large_peak < 40_000_000
