"""A catching event with correlation properties reads them from the message's own fields: a message that
carries them is delivered (and its data kept under the message's name); one that lacks them is refused as
the sender's mistake, and the case is left as it was."""
from __future__ import annotations

import pytest

from usm_engine.engine.errors import InvalidInput
from tests.conftest import fixture_files


@pytest.fixture
def waiting(engine):
    engine.deploy(fixture_files("correlated_message.bpmn"), "designer")
    case, _ = engine.start_case("correlated_message", "system")
    assert case["waiting_for"] == [{"type": "message", "name": "order_dispatch"}]
    return engine, case


def test_a_message_carrying_its_correlation_is_delivered(waiting):
    engine, case = waiting
    done = engine.send_message(case["id"], "order_dispatch", {"table_number": 4, "dish": "soup"}, "kitchen")
    assert done["status"] == "completed"
    assert done["data"]["order_dispatch"] == {"table_number": 4, "dish": "soup"}


def test_a_message_without_its_correlation_is_refused_and_changes_nothing(waiting):
    engine, case = waiting
    with pytest.raises(InvalidInput, match="order_dispatch.*correlation.*table_number"):
        engine.send_message(case["id"], "order_dispatch", {"dish": "soup"}, "kitchen")
    after = engine.get_case(case["id"])
    assert after["status"] == "running" and after["etag"] == case["etag"]
    assert [e["type"] for e in engine.trail(case["id"], {})][-1] != "message_received"
