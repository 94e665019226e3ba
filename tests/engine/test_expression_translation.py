"""JUEL (Camunda 7), FEEL (Camunda 8) and XPath (BPMN 2.0) expressions translated into the engine's Python
expressions.

Each row of TRUTH is evaluated the way the engine evaluates a gateway condition (RestrictedEnvironment,
in the server's process because the translation is plain), so the table checks the translation and
the semantics it promises, not only the text it produces."""
from __future__ import annotations

import pytest

from usm_engine.engine.expression_translation import FEEL, JUEL, XPATH, Untranslatable, translate
from usm_engine.engine.plain_expressions import is_plain
from usm_engine.engine.sandbox import RestrictedEnvironment

ENVIRONMENT = RestrictedEnvironment()

# (expression, case data, expected truth)
TRUTH = [
    # names and negation, in both spellings
    ("${approved}", {"approved": True}, True),
    ("${approved}", {"approved": False}, False),
    ("${!approved}", {"approved": False}, True),
    ("${!approved}", {"approved": True}, False),
    ("${not approved}", {"approved": True}, False),
    ("${!!approved}", {"approved": True}, True),
    # deferred evaluation reads the same as ${…} in a condition (Camunda evaluates both when reached)
    ("#{approved}", {"approved": True}, True),
    ("#{amount > 1000 && !urgent}", {"amount": 2000, "urgent": False}, True),
    ("#{amount > 1000 && !urgent}", {"amount": 2000, "urgent": True}, False),
    ("${ approved }", {"approved": True}, True),
    ("\n  ${approved}\n", {"approved": True}, True),
    # equality and inequality
    ("${amount == 5}", {"amount": 5}, True),
    ("${amount eq 5}", {"amount": 5.0}, True),
    ("${status != 'open'}", {"status": "open"}, False),
    ("${status ne \"closed\"}", {"status": "open"}, True),
    ("${amount == 5}", {"amount": "5"}, False),  # no JUEL coercion: documented in the module
    # relations, symbol and word
    ("${amount < 10}", {"amount": 3}, True),
    ("${amount lt 3}", {"amount": 3}, False),
    ("${amount > 10}", {"amount": 11}, True),
    ("${amount gt 11}", {"amount": 11}, False),
    ("${amount <= 10}", {"amount": 10}, True),
    ("${amount le 9.5}", {"amount": 10}, False),
    ("${amount >= 10}", {"amount": 10}, True),
    ("${amount ge 10.5}", {"amount": 10}, False),
    ("${name < 'm'}", {"name": "anna"}, True),
    # and / or, both spellings, precedence and parentheses
    ("${a && b}", {"a": True, "b": False}, False),
    ("${a and b}", {"a": True, "b": True}, True),
    ("${a || b}", {"a": False, "b": True}, True),
    ("${a or b}", {"a": False, "b": False}, False),
    ("${a || b && c}", {"a": True, "b": False, "c": False}, True),
    ("${(a || b) && c}", {"a": True, "b": False, "c": False}, False),
    ("${a && b || c}", {"a": False, "b": False, "c": True}, True),
    ("${a and (b or c)}", {"a": False, "b": True, "c": True}, False),
    ("${!a && b}", {"a": False, "b": True}, True),
    ("${!(a && b)}", {"a": True, "b": False}, True),
    ("${not (a or b)}", {"a": False, "b": False}, True),
    ("${amount > 100 && !urgent || vip}", {"amount": 50, "urgent": False, "vip": True}, True),
    # comparisons bind tighter than and/or, relations tighter than equality, and nothing chains
    ("${a == b == false}", {"a": 1, "b": 2}, True),
    ("${a < b == true}", {"a": 1, "b": 2}, True),
    ("${amount > 10 and amount < 20}", {"amount": 15}, True),
    # empty
    ("${empty items}", {"items": []}, True),
    ("${empty items}", {"items": [1]}, False),
    ("${empty name}", {"name": ""}, True),
    ("${empty name}", {"name": "x"}, False),
    ("${empty note}", {"note": None}, True),
    ("${empty details}", {"details": {}}, True),
    ("${empty count}", {"count": 0}, False),
    ("${empty flag}", {"flag": False}, False),
    ("${!empty items}", {"items": ["a"]}, True),
    ("${not empty items}", {"items": []}, False),
    ("${empty items == false}", {"items": [1]}, True),
    ("${empty items || done}", {"items": [1], "done": True}, True),
    # property access
    ("${customer.age >= 21}", {"customer": {"age": 30}}, True),
    ("${order.customer.tier == 'gold'}", {"order": {"customer": {"tier": "gold"}}}, True),
    ("${customer['age'] > 18}", {"customer": {"age": 17}}, False),
    ("${items[0] == 'a'}", {"items": ["a", "b"]}, True),
    ("${empty order.lines}", {"order": {"lines": []}}, True),
    # literals
    ("${flag == true}", {"flag": True}, True),
    ("${flag == false}", {"flag": True}, False),
    ("${note == null}", {"note": None}, True),
    ("${note != null}", {"note": "x"}, True),
    ("${true}", {}, True),
    ("${false || null}", {}, False),
    ("${amount > -1}", {"amount": 0}, True),
    ("${rate == 0.5}", {"rate": 0.5}, True),
    ("${rate < .75}", {"rate": 0.5}, True),
    ("${amount == 1e3}", {"amount": 1000}, True),
    ("${code == 007}", {"code": 7}, True),
    ("${name == 'O\\'Brien'}", {"name": "O'Brien"}, True),
    ("${name == \"O'Brien\"}", {"name": "O'Brien"}, True),
    ("${text == 'a}b'}", {"text": "a}b"}, True),
    # FEEL (Camunda 8)
    ("=x > 5", {"x": 6}, True),
    ("=x > 5", {"x": 5}, False),
    ("=x >= 5", {"x": 5}, True),
    ("=x < 5", {"x": 5}, False),
    ("=x <= 5", {"x": 5}, True),
    ("=approved = true", {"approved": True}, True),
    ("=status = \"open\"", {"status": "open"}, True),
    ("=status != \"open\"", {"status": "open"}, False),
    ("=not(flag)", {"flag": False}, True),
    ("=not(a and b)", {"a": True, "b": False}, True),
    ("= approved", {"approved": True}, True),
    ("=fraud", {"fraud": False}, False),
    ("=a or b and c", {"a": True, "b": False, "c": False}, True),
    ("=(a or b) and c", {"a": True, "b": False, "c": False}, False),
    ("=customer.age >= 18", {"customer": {"age": 18}}, True),
    ("=note = null", {"note": None}, True),
    ("=text = \"say \\\"hi\\\"\"", {"text": 'say "hi"'}, True),
]


@pytest.mark.parametrize(("expression", "data", "expected"), TRUTH, ids=[row[0].strip() for row in TRUTH])
def test_translation_evaluates_as_camunda_would(expression, data, expected):
    python = translate(expression)
    assert python is not None and is_plain(python), python
    assert bool(ENVIRONMENT.evaluate(python, dict(data))) is expected


# FEEL's quantified expressions loop, so they are not plain: each row runs in the sandbox process, as a
# condition with a loop does. (expression, case data, expected truth)
QUANTIFIED = [
    ("= some risk in riskLevels satisfies risk = \"red\"", {"riskLevels": ["green", "red"]}, True),
    ("= some risk in riskLevels satisfies risk = \"red\"", {"riskLevels": ["green", "yellow"]}, False),
    ("= some risk in riskLevels satisfies risk = \"red\"", {"riskLevels": []}, False),
    ("= every risk in riskLevels satisfies risk = \"yellow\"", {"riskLevels": ["yellow", "yellow"]}, True),
    ("= every risk in riskLevels satisfies risk = \"yellow\"", {"riskLevels": ["yellow", "red"]}, False),
    ("= every risk in riskLevels satisfies risk = \"yellow\"", {"riskLevels": []}, True),
    # the condition reads case data beside the item, and reaches as far as the expression goes
    ("=every x in amounts satisfies x <= limit", {"amounts": [1, 5], "limit": 5}, True),
    ("=every x in amounts satisfies x <= limit", {"amounts": [1, 6], "limit": 5}, False),
    ("=some x in xs satisfies x > 1 and flag", {"xs": [2], "flag": False}, False),
    ("=flag and every x in xs satisfies x > 1", {"xs": [2], "flag": True}, True),
    ("=(some x in xs satisfies x > 1) or flag", {"xs": [0], "flag": True}, True),
    ("=not(some x in xs satisfies x.open)", {"xs": [{"open": False}]}, True),
    # several contexts nest; the item shadows a case variable of its name only inside the quantifier
    ("=some x in a, y in b satisfies x = y", {"a": [1, 2], "b": [2, 3]}, True),
    ("=some x in a, y in b satisfies x = y", {"a": [1], "b": [2, 3]}, False),
    ("=(some x in xs satisfies x = 2) and x = 9", {"xs": [2], "x": 9}, True),
]


@pytest.mark.parametrize(("expression", "data", "expected"), QUANTIFIED, ids=[row[0] for row in QUANTIFIED])
def test_feel_quantifiers_evaluate_as_feel_would(expression, data, expected):
    python = translate(expression)
    assert python is not None and not is_plain(python), python
    assert bool(ENVIRONMENT.evaluate(python, dict(data))) is expected


@pytest.mark.parametrize(("expression", "python"), [
    ("${approved}", "approved"),
    ("${!approved}", "not approved"),
    ("${a || b && c}", "a or b and c"),
    ("${(a || b) && c}", "(a or b) and c"),
    ("${a == b == false}", "(a == b) == False"),
    ("${!a == b}", "(not a) == b"),
    ("${empty x}", "not x and x != 0"),
    ("${customer.address.city eq 'Oslo'}", "customer['address']['city'] == 'Oslo'"),
    ("${count ge 5}", "count >= 5"),
    ("${reminder}", "reminder"),
    ("${5}", "5"),
    ("=status = \"open\"", "status == 'open'"),
    ("=not(flag)", "not flag"),
    ("= some risk in riskLevels satisfies risk = \"red\"", "any(risk == 'red' for risk in riskLevels)"),
    ("=every x in a, y in b satisfies x < y", "all(x < y for x in a for y in b)"),
])
def test_translations_read_as_a_person_would_write_them(expression, python):
    assert translate(expression) == python


@pytest.mark.parametrize("text", ["amount > 1000", "approved == True", "x == '${y}'", "\"PT1H\"", "PT4H", "", "  "])
def test_text_that_is_neither_juel_nor_feel_is_left_to_python(text):
    assert translate(text) is None


def test_an_unknown_name_fails_when_evaluated_as_every_engine_expression_does():
    with pytest.raises(NameError):
        ENVIRONMENT.evaluate(translate("${approved}"), {})
    with pytest.raises(KeyError):
        ENVIRONMENT.evaluate(translate("${customer.age > 1}"), {"customer": {}})


# (expression, the dialect named, a fragment of the reason)
REFUSED = [
    ("${execution.getVariable('x')}", JUEL, "Camunda's 'execution' object"),
    ("${execution.processBusinessKey == 'a'}", JUEL, "'execution' object"),
    ("${authenticatedUserId == 'kermit'}", JUEL, "'authenticatedUserId' object"),
    ("${customer.prop(\"age\").numberValue() >= 21}", JUEL, "method call (customer.prop(…))"),
    ("${invoiceService.isValid(invoice)}", JUEL, "method call (invoiceService.isValid(…))"),
    ("${(a).b()}", JUEL, "method call"),
    ("${dateTime().plusDays(1)}", JUEL, "function call (dateTime(…))"),
    ("${fn:contains(a, b)}", JUEL, "function call (fn(…))"),
    ("#{execution.getVariable('x')}", JUEL, "Camunda's 'execution' object"),
    ("${a ? b : c}", JUEL, "conditional operator (? :)"),
    ("${amount + 1 > 2}", JUEL, "arithmetic ('+')"),
    ("${amount * 2 > 2}", JUEL, "arithmetic ('*')"),
    ("${amount div 2 > 2}", JUEL, "arithmetic ('div')"),
    ("${amount mod 2 == 0}", JUEL, "arithmetic ('mod')"),
    ("${-amount < 0}", JUEL, "arithmetic ('-')"),
    ("${x instanceof y}", JUEL, "instanceof"),
    ("Amount: ${amount}", JUEL, "text outside ${…}"),
    ("${a} ${b}", JUEL, "text outside ${…}"),
    ("${a} && ${b}", JUEL, "text outside ${…}"),
    ("${a && b", JUEL, "never closed"),
    ("${}", JUEL, "empty"),
    ("${a[b]}", JUEL, "index that is not a quoted name or a whole number"),
    ("${class == 1}", JUEL, "'class' cannot be a Python name"),
    ("${_secret}", JUEL, "'_secret' cannot be a Python name"),
    ("${a$b}", JUEL, "'a$b' cannot be a Python name"),
    ("${a == 'x}", JUEL, "never closed"),
    ("${a == }", JUEL, "ends where a value is expected"),
    ("${a == (b}", JUEL, "')' expected, found the end"),
    ("${a b}", JUEL, "'b' is unexpected"),
    ("${(a}", JUEL, "')' expected"),
    ("${a.}", JUEL, "a property name after '.'"),
    ("${a == #x}", JUEL, "the character '#'"),
    ("${{1, 2}}", JUEL, "the character '{'"),
    ("${1e999 > x}", JUEL, "too large"),
    ("=x in [1, 2]", FEEL, "FEEL's 'in' is not translated here"),
    ("=some x in xs", FEEL, "'satisfies' expected"),
    ("=some true in xs satisfies x", FEEL, "a variable name after 'some'"),
    ("=every x in 1..3 satisfies x > 0", FEEL, "cannot be read"),
    ("=some class in xs satisfies class", FEEL, "'class' cannot be a Python name"),
    ("=if a then b else c", FEEL, "FEEL's 'if'"),
    ("=items[1] = \"a\"", FEEL, "filters and indexes"),
    ("=not flag", FEEL, "not(…)"),
    ("=a < b < c", FEEL, "do not chain"),
    ("=count(items) > 1", FEEL, "function call (count(…))"),
    ("=x + 1 > 2", FEEL, "arithmetic ('+')"),
    ("=x == 1", FEEL, "'=' is unexpected"),
    ("=status = 'open'", FEEL, "the character '''"),
    ("=Vacation Approval = \"Approved\"", FEEL, "'Approval' is unexpected"),
    ("=", FEEL, "empty"),
]


@pytest.mark.parametrize(("expression", "dialect", "fragment"), REFUSED, ids=[row[0] for row in REFUSED])
def test_expressions_outside_the_subset_are_refused_with_the_reason(expression, dialect, fragment):
    with pytest.raises(Untranslatable) as raised:
        translate(expression)
    assert raised.value.dialect == dialect
    assert fragment in raised.value.reason, raised.value.reason
    assert raised.value.instead  # always says what to write instead


# XPath, BPMN 2.0's default expression language, as exporters write conditions on data objects. A data object
# is named in the expression and held under its id. (expression, case data by id, expected truth)
DATA_OBJECTS = {"approved": "DataObject_Approved", "clarified": "DataObject_Clarified", "odd": "sid-1a"}
XPATH_TRUTH = [
    ("bpmn:getDataObject('approved')", {"DataObject_Approved": True}, True),
    ("bpmn:getDataObject('approved')", {"DataObject_Approved": False}, False),
    ("not(bpmn:getDataObject('approved'))", {"DataObject_Approved": False}, True),
    ("not(bpmn:getDataObject('approved'))", {"DataObject_Approved": True}, False),
    ("bpmn:getDataObject('clarified') = 'yes'", {"DataObject_Clarified": "yes"}, True),
    ("bpmn:getDataObject('clarified') = 'yes'", {"DataObject_Clarified": "no"}, False),
    ("bpmn:getDataObject(\"clarified\") != 'no' and true()", {"DataObject_Clarified": "yes"}, True),
    ("getDataObject('DataObject_Approved') or false()", {"DataObject_Approved": False}, False),
    ("bpmn:getDataObject('unnamed') > 2", {"unnamed": 3}, True),  # not a known name: taken as the variable
]


@pytest.mark.parametrize(("expression", "data", "expected"), XPATH_TRUTH, ids=[row[0] for row in XPATH_TRUTH])
def test_xpath_conditions_on_data_objects_evaluate_as_bpmn_says(expression, data, expected):
    python = translate(expression, DATA_OBJECTS)
    assert python is not None and is_plain(python), python
    assert bool(ENVIRONMENT.evaluate(python, dict(data))) is expected


@pytest.mark.parametrize(("expression", "fragment"), [
    ("bpmn:getDataObject('my var') = 1", "the data object name 'my var' is not a variable name"),
    ("bpmn:getDataObject('a-b') = 1", "the data object name 'a-b' is not a variable name"),
    ("bpmn:getDataObject('odd')", "data object 'odd' is held under its id 'sid-1a', which is not a variable name"),
    ("bpmn:getDataObject('order')/amount > 5", "arithmetic ('/')"),
    ("bpmn:getDataObject('order') = count(//item)", "a function call (count(…))"),
])
def test_xpath_outside_the_subset_is_refused_as_xpath(expression, fragment):
    with pytest.raises(Untranslatable) as raised:
        translate(expression, DATA_OBJECTS)
    assert raised.value.dialect == XPATH
    assert fragment in raised.value.reason, raised.value.reason
