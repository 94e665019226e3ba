"""Service-level insight (engine/insight.py) over a known history: USM calls driven through the real engine on an
injected clock, each step taking a chosen time, and every figure checked exactly against what that history
makes of it by hand (the comments say how)."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select

from usm_engine.engine.case_state import duration_seconds
from usm_engine.engine.clock import FixedClock
from usm_engine.engine.database import MIGRATIONS_DIR
from usm_engine.engine.errors import InvalidInput
from usm_engine.engine.insight import GROUPINGS, percentile
from usm_engine.engine.schema import cases
from tests.definitions.support import AGREEMENT, DEFAULT_DECISIONS, Driver, deploy_definitions

START, END = datetime(2026, 3, 1), datetime(2026, 3, 8)
HOUR = 3600
REQUEST = {"requester": "ann@example.org", "summary": "printer down", "agreement": AGREEMENT}
P1, P2, P3, P4 = ({"impact": "high", "urgency": "high"}, {"impact": "high", "urgency": "medium"},
                  {"impact": "medium", "urgency": "medium"}, {"impact": "low", "urgency": "low"})


class History:
    """Cases started and worked at chosen moments: each step is completed a chosen number of hours after the
    one before it, with its form filled in from its own fields."""

    def __init__(self, app, clock: FixedClock):
        self.app, self.clock = app, clock
        self.engine = app.extensions["usm_engine"]
        self.driver = Driver(app.test_client(), app)
        deploy_definitions(self.driver.client)

    def start(self, key: str, at: datetime, request: dict | None = None) -> str:
        self.clock.move_to(at.replace(tzinfo=timezone.utc))
        return self.driver.start(key, {"request": request or REQUEST})["id"]

    def work(self, case_id: str, *steps: tuple) -> None:
        """steps: (element id, hours waited before completing it, decisions)."""
        for element_id, hours, *decisions in steps:
            self.clock.advance(hours=hours)
            [task] = [task for task in self.driver.ready(case_id) if task["element_id"] == element_id]
            task = self.driver.get(f"/api/v1/tasks/{task['id']}")
            answers = {**DEFAULT_DECISIONS, **(decisions[0] if decisions else {})}
            self.driver.complete(task, Driver.answer(task["form"], answers, defaultdict(int), element_id))

    def case(self, case_id: str) -> dict:
        return self.driver.case(case_id)


def operate(history: History, at: datetime, priority: dict, hours: list[float], request: dict | None = None) -> str:
    """A service request (WF5) through as many of its steps as `hours` gives times for."""
    case_id = history.start("usm-operate", at, request)
    steps = [("Activity_AcceptCall", {}), ("Activity_Classify", priority), ("Activity_PlanActivities", {}),
             ("Activity_ExecuteActivities", {}), ("Activity_ReviewDelivery", {}), ("Activity_EvaluateClose", {})]
    history.work(case_id, *[(element_id, waited, decisions)
                            for (element_id, decisions), waited in zip(steps[:len(hours)], hours, strict=True)])
    return case_id


def make_history(app_factory, first: datetime) -> tuple[History, dict[str, str]]:
    """Z two days before `first`; A to G on the seven days from `first` on (the period); G's plan is done after."""
    clock = FixedClock()
    h = History(app_factory(clock=clock), clock)

    def day(number: int, hour: int = 0) -> datetime:
        return first + timedelta(days=number, hours=hour)

    ids = {"Z": operate(h, day(-2), P2, [0, 0, 0, 0, 0, 0])}
    # A: P1 (4 h), fulfilled 3.5 h after registration: met.
    ids["A"] = operate(h, day(0), P1, [0.5, 0.5, 1, 1, 0.5, 1])
    # B: P1; its execution is ready at 02:00, the target passes at 06:00 and the timer fires at 07:00 (an
    # escalation case waits in the Workflow coordinator lane); fulfilled at 08:00: 8 h, breached.
    ids["B"] = operate(h, day(1), P1, [0.5, 0.5, 1])
    h.clock.move_to(day(1, 7).replace(tzinfo=timezone.utc))
    assert h.engine.fire_due_timers() == 1
    h.work(ids["B"], ("Activity_ExecuteActivities", 0), ("Activity_ReviewDelivery", 1), ("Activity_EvaluateClose", 0.5))
    # C: P3 (24 h), fulfilled after 10 h: met.
    ids["C"] = operate(h, day(2), P3, [1, 1, 2, 4, 2, 1])
    # D: P4 by the priority table (no agreement), left waiting to be planned from 02:00 on day 3.
    ids["D"] = operate(h, day(3), P4, [1, 1], request={"requester": "bob", "summary": "no agreement"})
    # E: reclassified at intake after 2 h (a new call at the service desk waits from then on), closed at 02:30.
    ids["E"] = h.start("usm-operate", day(4))
    h.work(ids["E"], ("Activity_AcceptCall", 2, {"intake_decision": "reclassify", "reclassify_as": "rfc"}),
           ("Activity_EvaluateClose", 0.5))
    # F: an incident (P2), recovered by a fork into Operate (WF4) whose own call is classified P4 and waits
    # to be planned from 06:00 on day 5.
    ids["F"] = h.start("usm-recover", day(5))
    h.work(ids["F"], ("Activity_AcceptCall", 1), ("Activity_Classify", 1, P2), ("Activity_Analyze", 1),
           ("Activity_PrepareRecovery", 1, {"recovery_route": "operate"}), ("Activity_AcceptCall", 1),
           ("Activity_Classify", 1, P4))
    # G: P2, waits to be planned from 02:00 on day 6 until 06:00 the day after, after the period.
    ids["G"] = operate(h, day(6), P2, [1, 1])
    h.work(ids["G"], ("Activity_PlanActivities", 28))
    return h, ids


@pytest.fixture
def history(app_factory) -> tuple[History, dict[str, str]]:
    """The history of make_history in the week of 1 to 7 March 2026."""
    return make_history(app_factory, START)


def figures(engine, start=START, end=END, workflow=None, priority=None, by="workflow-priority") -> list[dict]:
    return engine.service_levels(engine.insight_period(start, end, workflow, priority), GROUPINGS[by])


def row(resolved=0, met=0, breached=0, without_target=0, p50=None, p90=None, open_=0, escalations=0,
        reclassifications=0, **group) -> dict:
    return {**group, "resolved": resolved, "met": met, "breached": breached, "without_target": without_target,
            "p50_seconds": p50, "p90_seconds": p90, "open": open_, "escalations": escalations,
            "reclassifications": reclassifications}


def test_service_levels_per_workflow_and_priority(history):
    h, _ = history
    assert figures(h.engine) == [
        row(workflow="WF4", priority="P2", open_=1),                                         # F
        # A 3.5 h and B 8 h against 4 h; B's timer fired in the period
        row(workflow="WF5", priority="P1", resolved=2, met=1, breached=1, p50=int(3.5 * HOUR), p90=8 * HOUR,
            escalations=1),
        row(workflow="WF5", priority="P2", open_=1),                                         # G (Z: February)
        row(workflow="WF5", priority="P3", resolved=1, met=1, p50=10 * HOUR, p90=10 * HOUR),  # C
        row(workflow="WF5", priority="P4", open_=1),                                         # D
        # E: never classified, closed at its case's completion after 2.5 h, and reclassified
        row(workflow="WF5", priority=None, resolved=1, without_target=1, p50=int(2.5 * HOUR), p90=int(2.5 * HOUR),
            reclassifications=1)]


def test_service_levels_grouped_otherwise_and_filtered(history):
    h, _ = history
    # WF5's calls took 2.5, 3.5, 8 and 10 h: the 2nd of 4 is the median, the 4th the 90th percentile.
    assert figures(h.engine, by="workflow") == [
        row(workflow="WF4", open_=1),
        row(workflow="WF5", resolved=4, met=2, breached=1, without_target=1, p50=int(3.5 * HOUR), p90=10 * HOUR,
            open_=2, escalations=1, reclassifications=1)]
    assert figures(h.engine, by="priority") == [
        row(priority="P1", resolved=2, met=1, breached=1, p50=int(3.5 * HOUR), p90=8 * HOUR, escalations=1),
        row(priority="P2", open_=2), row(priority="P3", resolved=1, met=1, p50=10 * HOUR, p90=10 * HOUR),
        row(priority="P4", open_=1),
        row(priority=None, resolved=1, without_target=1, p50=int(2.5 * HOUR), p90=int(2.5 * HOUR),
            reclassifications=1)]
    assert figures(h.engine, by="total") == [
        row(resolved=4, met=2, breached=1, without_target=1, p50=int(3.5 * HOUR), p90=10 * HOUR, open_=3,
            escalations=1, reclassifications=1)]
    assert figures(h.engine, workflow="WF5", priority="P1") == [
        row(workflow="WF5", priority="P1", resolved=2, met=1, breached=1, p50=int(3.5 * HOUR), p90=8 * HOUR,
            escalations=1)]
    assert figures(h.engine, priority="P2", by="total") == [row(open_=2)]
    assert figures(h.engine, workflow="WF8") == []
    # Z is the only call of February: resolved at once at its start, within its 8 hours.
    assert figures(h.engine, datetime(2026, 2, 1), START) == [
        row(workflow="WF5", priority="P2", resolved=1, met=1, p50=0, p90=0)]


def test_time_per_step(history):
    h, _ = history

    def at(process, element_id, name, lane, hours, p50, p90):
        """`hours`: each time the step took; the percentiles by hand: the nearest rank of n values at 50 % is
        the ceil(n / 2)-th, at 90 % the ceil(0.9 n)-th."""
        return {"process": process, "element_id": element_id, "name": name, "lane": lane, "completed": len(hours),
                "p50_seconds": int(p50 * HOUR), "p90_seconds": int(p90 * HOUR)}

    assert h.engine.step_times(h.engine.insight_period(START, END)) == [
        # A, B, C, D, F and F's fork, G: 0.5 0.5 1 1 1 1 1
        at("usm-frame-classify", "Activity_Classify", "Classify", "Service desk", [0.5, 0.5, 1, 1, 1, 1, 1], 1, 1),
        # A, B, C, E: 0.5 0.5 1 1
        at("usm-frame-close", "Activity_EvaluateClose", "Evaluate & close", "Service desk", [1, 0.5, 1, 0.5], 0.5, 1),
        # A, B, C, D, E, F and F's fork, G: 0.5 0.5 1 1 1 1 1 2
        at("usm-frame-intake", "Activity_AcceptCall", "Accept call", "Service desk", [0.5, 0.5, 1, 1, 2, 1, 1, 1],
           1, 2),
        at("usm-frame-review", "Activity_ReviewDelivery", "Review delivery & feedback", "Service desk", [0.5, 1, 2],
           1, 2),
        # B's took 5 h: ready at 02:00, done at 07:00 when its escalation fired
        at("usm-operate", "Activity_ExecuteActivities", "Execute activities", "Operations", [1, 5, 4], 4, 5),
        # D's, G's and F's fork's are not done in the period
        at("usm-operate", "Activity_PlanActivities", "Plan activities", "Operations", [1, 1, 2], 1, 2),
        at("usm-recover", "Activity_Analyze", "Analyze", "Solution team", [1], 1, 1),
        at("usm-recover", "Activity_PrepareRecovery", "Prepare recovery", "Workflow coordinator", [1], 1, 1)]
    # F's steps alone, its fork's included: intake and classification twice
    assert [(s["element_id"], s["completed"]) for s in h.engine.step_times(h.engine.insight_period(START, END, "WF4"))
            ] == [("Activity_Classify", 2), ("Activity_AcceptCall", 2), ("Activity_Analyze", 1),
                  ("Activity_PrepareRecovery", 1)]


@pytest.mark.parametrize(("values", "p50", "p90"), [([], None, None), ([7], 7, 7), ([4, 1, 3, 2], 2, 4),
                                                    (list(range(1, 11)), 5, 9), ([0.4, 0.6], 0, 1)])
def test_percentiles_are_nearest_rank_in_whole_seconds(values, p50, p90):
    assert (percentile(values, 50), percentile(values, 90)) == (p50, p90)


def test_backlog_per_lane_at_the_end_of_the_period(history):
    h, _ = history
    assert h.engine.backlog(h.engine.insight_period(START, END)) == [
        # D's plan (since 4 March 02:00), F's fork's (6 March 06:00) and G's, done only after the period
        {"lane": "Operations", "lane_role": "operations", "tasks": 3, "open_calls": 3,
         "oldest_since": "2026-03-04T02:00:00Z", "oldest_age_seconds": (3 * 24 + 22) * HOUR},
        # the call E was reclassified into, at the service desk since 5 March 02:00
        {"lane": "Service desk", "lane_role": "service-desk", "tasks": 1, "open_calls": 1,
         "oldest_since": "2026-03-05T02:00:00Z", "oldest_age_seconds": (2 * 24 + 22) * HOUR},
        # B's escalation, since 2 March 07:00
        {"lane": "Workflow coordinator", "lane_role": "workflow-coordinator", "tasks": 1, "open_calls": 1,
         "oldest_since": "2026-03-02T07:00:00Z", "oldest_age_seconds": (5 * 24 + 17) * HOUR}]
    assert h.engine.backlog(h.engine.insight_period(START, END, "WF5")) == [
        {"lane": "Operations", "lane_role": "operations", "tasks": 2, "open_calls": 2,
         "oldest_since": "2026-03-04T02:00:00Z", "oldest_age_seconds": (3 * 24 + 22) * HOUR}]


def test_a_period_that_ended_earlier_is_seen_as_it_stood_then(history):
    h, _ = history
    end = datetime(2026, 3, 2, 4)  # B is being executed since 02:00, to be fulfilled at 08:00
    assert figures(h.engine, START, end) == [
        row(workflow="WF5", priority="P1", resolved=1, met=1, p50=int(3.5 * HOUR), p90=int(3.5 * HOUR), open_=1)]
    assert h.engine.backlog(h.engine.insight_period(START, end)) == [
        {"lane": "Operations", "lane_role": "operations", "tasks": 1, "open_calls": 1,
         "oldest_since": "2026-03-02T02:00:00Z", "oldest_age_seconds": 2 * HOUR}]
    assert [s["element_id"] for s in h.engine.step_times(h.engine.insight_period(START, end))] == [
        "Activity_Classify", "Activity_EvaluateClose", "Activity_AcceptCall", "Activity_ReviewDelivery",
        "Activity_ExecuteActivities", "Activity_PlanActivities"]


def test_the_call_record_is_projected_and_searchable(history):
    h, ids = history
    with h.engine.db.reader.connect() as conn:
        projected = {row.id: row for row in conn.execute(select(cases))}
    call = {name: (projected[ids[name]].call_number, projected[ids[name]].workflow, projected[ids[name]].priority,
                   projected[ids[name]].resolution_target) for name in ids}
    assert call == {"Z": ("SRQ-000001", "WF5", "P2", 8 * HOUR), "A": ("SRQ-000002", "WF5", "P1", 4 * HOUR),
                    "B": ("SRQ-000003", "WF5", "P1", 4 * HOUR), "C": ("SRQ-000004", "WF5", "P3", 24 * HOUR),
                    "D": ("SRQ-000005", "WF5", "P4", 72 * HOUR), "E": ("SRQ-000006", "WF5", None, None),
                    # F runs inside its fork, whose own call (SRQ-000007, P4) is what its data shows now
                    "F": ("INC-000001", "WF4", "P2", 8 * HOUR), "G": ("SRQ-000008", "WF5", "P2", 8 * HOUR)}
    assert h.case(ids["F"])["data"]["call"]["number"] == "SRQ-000007"
    assert projected[ids["B"]].resolved_at == datetime(2026, 3, 2, 8)  # fulfilled, not closed half an hour later
    assert projected[ids["D"]].resolved_at is None
    found, _ = h.engine.list_cases({"call_number": "INC-000001"}, None, 50)
    assert [case["id"] for case in found] == [ids["F"]]
    found, _ = h.engine.list_cases({"workflow": "WF5", "status": "running"}, None, 50)
    assert [case["id"] for case in found] == [ids["D"], ids["G"]]


def test_the_migration_fills_in_rows_written_before_it(history, database_url):
    h, _ = history
    columns = (cases.c.id, cases.c.call_number, cases.c.workflow, cases.c.priority, cases.c.resolution_target,
               cases.c.resolved_at)
    with h.engine.db.reader.connect() as conn:
        written = sorted(conn.execute(select(*columns)))
    assert len([row for row in written if row.call_number]) == 8
    h.engine.db.dispose()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url)
    with h.engine.db.writer.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
        assert "call_number" not in {column["name"] for column in inspect(connection).get_columns("cases")}
        command.upgrade(config, "head")
    with h.engine.db.reader.connect() as conn:
        assert sorted(conn.execute(select(*columns))) == written


def test_the_period_defaults_to_the_last_30_days_and_must_not_be_empty(history):
    h, _ = history
    h.clock.move_to(datetime(2026, 3, 31, 12, tzinfo=timezone.utc))
    chosen = h.engine.insight_period(None, None)
    assert (chosen.start, chosen.end) == (datetime(2026, 3, 1, 12), datetime(2026, 3, 31, 12))
    assert h.engine.insight_period(None, END).start == END - timedelta(days=30)
    with pytest.raises(InvalidInput, match=r"the period is empty: from \(2026-03-08T00:00:00Z\) must be before "
                                           r"to \(2026-03-08T00:00:00Z\)"):
        h.engine.insight_period(END, END)
    with pytest.raises(InvalidInput, match="workflow must be 1 to 8 characters"):
        h.engine.insight_period(START, END, "WF" * 5)


@pytest.mark.parametrize(("text", "seconds"), [("PT4H", 4 * HOUR), ("P3D", 72 * HOUR), ("P1W", 7 * 24 * HOUR),
                                               ("P1DT2H30M15S", 26 * HOUR + 30 * 60 + 15), ("PT0S", 0), ("P1M", None),
                                               ("PT", None), ("P1DT", None), ("4 hours", None), (4, None)])
def test_resolution_targets_in_seconds(text, seconds):
    assert duration_seconds(text) == seconds
