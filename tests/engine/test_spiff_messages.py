"""Messages as the SpiffWorkflow modeler writes them: spiffworkflow:messagePayload is what a send task
sends, and spiffworkflow:messageVariable is where a catch (start event, intermediate event, receive task;
on the element or on its message) puts what it receives. Before, the payload was dropped and the variable
never set, so the catching case failed at the first condition or script that read it."""
from __future__ import annotations

from usm_engine.engine.spiff_messages import MessageEventDefinition
from usm_engine.engine.spiff_setup import SERIALIZER
from tests.conftest import FIXTURES

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
FILES = ("quote_buyer.bpmn", "quote_seller.bpmn", "choose.schema.json")
CHOICE = {"item": "desk", "qty": 3}


def upload(*names: str) -> list[tuple[str, bytes]]:
    return [(name, (FIXTURES / "spiff_messages" / name).read_bytes()) for name in names]


def asked(engine) -> dict:
    """A buyer case that chose and sent its request: it now waits for the quote."""
    _, items = engine.deploy(upload(*FILES), "designer")
    assert {item["key"]: item["warnings"] for item in items} == {"quote_buyer": [], "quote_seller": []}
    case, _ = engine.start_case("quote_buyer", "system")
    return engine.complete_task(case["tasks"][0]["id"], CHOICE, "alice", ANYONE)


def test_the_send_task_sends_its_message_payload_and_the_start_event_puts_it_in_its_variable(engine):
    case = asked(engine)
    [seller_id] = engine.get_case(case["id"])["child_cases"]
    seller = engine.get_case(seller_id)
    assert seller["definition"] == "quote_seller"
    # The payload is the expression's value, not the case data; the script read it from `request`.
    assert seller["data"]["request"] == CHOICE and seller["data"]["pieces"] == 3
    assert seller["data"]["quote_requested"] == CHOICE  # the variable every catch gets, as before
    assert [t["name"] for t in seller["tasks"]] == ["Price it"]


def test_what_a_message_started_process_reads_of_its_start_variable_is_its_start_inputs(engine):
    engine.deploy(upload(*FILES), "designer")
    # quote_seller starts only on its message, which its start event puts in `request`; it reads request["qty"]
    # as a number, so a client starting it (the start data is the message's data) is told to send qty.
    assert engine.get_definition("quote_seller")["start_inputs"] == {
        "type": "object", "properties": {"qty": {"type": "number"}}, "required": ["qty"]}
    case, _ = engine.start_case("quote_seller", "system", data={"qty": 2})
    assert case["data"]["request"] == {"qty": 2} and case["data"]["pieces"] == 2


def test_a_message_variable_on_the_message_is_set_by_the_intermediate_catch(engine):
    case = asked(engine)
    assert [w["name"] for w in case["waiting_for"] if w["type"] == "message"] == ["quote_given"]
    done = engine.send_message(case["id"], "quote_given", {"price": 90}, "supplier")
    assert done["status"] == "completed" and done["data"]["quote"] == {"price": 90}
    assert [e["element_id"] for e in engine.trail(case["id"], {}) if e["type"] == "event_passed"][-1] == \
        "EndEvent_Bought"


def test_the_receive_task_puts_the_revised_quote_in_its_variable_and_both_branches_end(engine):
    dear = engine.send_message(asked(engine)["id"], "quote_given", {"price": 150}, "supplier")
    assert dear["status"] == "running" and [w["name"] for w in dear["waiting_for"]] == ["quote_revised"]
    bought = engine.send_message(dear["id"], "quote_revised", {"price": 100}, "supplier")
    assert bought["status"] == "completed" and bought["data"]["revised"] == {"price": 100}
    dropped = engine.send_message(asked(engine)["id"], "quote_given", {"price": 150}, "supplier")
    dropped = engine.send_message(dropped["id"], "quote_revised", {"price": 120}, "supplier")
    ends = [e["element_id"] for e in engine.trail(dropped["id"], {}) if e["type"] == "event_passed"]
    assert dropped["status"] == "completed" and ends[-1] == "EndEvent_Dropped"


def test_a_camunda_expression_beside_a_message_payload_wins(engine):
    text = (upload(FILES[0])[0][1].decode()
            .replace('messageRef="Message_Request">',
                     'messageRef="Message_Request" camunda:expression="{\'item\': item, \'qty\': 1}">'))
    engine.deploy([(FILES[0], text.encode()), *upload(*FILES[1:])], "designer")
    case, _ = engine.start_case("quote_buyer", "system")
    case = engine.complete_task(case["tasks"][0]["id"], CHOICE, "alice", ANYONE)
    [seller_id] = engine.get_case(case["id"])["child_cases"]
    seller = engine.get_case(seller_id)
    assert seller["data"]["request"] == {"item": "desk", "qty": 1} and seller["data"]["pieces"] == 1


def test_the_variable_survives_storing_the_spec_and_a_spec_stored_without_it_catches_as_before():
    definition = MessageEventDefinition("quote_given", message_var="quote")
    stored = SERIALIZER.registry.convert(definition)
    assert stored["message_var"] == "quote" and stored["typename"] == "MessageEventDefinition"
    del stored["message_var"]  # as a version deployed before this was stored
    restored = SERIALIZER.registry.restore(stored)
    assert type(restored) is MessageEventDefinition and restored.message_var is None
