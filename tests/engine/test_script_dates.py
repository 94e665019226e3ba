"""The date and time names SpiffWorkflow's own platform (spiff-arena) gives scripts: the classes datetime,
date, timedelta and timezone, and `time` with time() and monotonic() only. They are pure or read a clock;
a script given them still cannot import, open files or reach an object's internals."""
from __future__ import annotations

import pytest

from usm_engine.engine.sandbox import make_script_engine


@pytest.fixture(scope="module")
def environment():
    return make_script_engine().environment


def test_a_script_uses_dates_and_clocks(environment):
    context = {"start": "2024-02-28"}
    environment.execute(
        "day = datetime.strptime(start, '%Y-%m-%d').date()\n"
        "later = (day + timedelta(days=2)).isoformat()\n"
        "utc = datetime(2024, 1, 1, tzinfo=timezone.utc).isoformat()\n"
        "first = date(2024, 1, 1).isoformat()\n"
        "stamp = time.time() > 0 and time.monotonic() >= 0\n"
        "del time\n", context)
    assert context == {"start": "2024-02-28", "later": "2024-03-01", "utc": "2024-01-01T00:00:00+00:00",
                       "first": "2024-01-01", "stamp": True}


def test_an_expression_uses_them_too_and_task_data_of_the_same_name_wins(environment):
    assert environment.evaluate("(date(2024, 3, 1) - date(2024, 2, 1)).days", {}) == 29
    context = {"date": "2024-05-01"}
    environment.execute("copy = date", context)
    assert context == {"date": "2024-05-01", "copy": "2024-05-01"}


@pytest.mark.parametrize("script, error", [
    ("import datetime", ImportError),
    ("import time as t", ImportError),
    ("x = open('/etc/passwd').read()", NameError),
    ("time.sleep(1)", RuntimeError),
    ("x = datetime.now().__class__", SyntaxError),
    ("x = time.time.__self__", SyntaxError),
])
def test_a_script_still_cannot_import_open_sleep_or_reach_internals(environment, script, error):
    with pytest.raises(error):
        environment.execute(script, {})
