"""Forms as the SpiffWorkflow modeler (spiff-arena's) names them: a user task's
`spiffworkflow:property name="formJsonSchemaFilename"` is the JSON Schema file of its form, as
`camunda:formKey` is in Camunda's modeler. Before, it was ignored and such a task took any data.

spiff-arena keeps the form files beside the diagram in its own repository, so a diagram often comes without
them: a form that is not in the upload is a located warning (the task takes any data), not a refusal, unlike
a camunda:formKey naming a missing file, which a designer of this engine wrote for it.
"""
from __future__ import annotations

from lxml import etree

from .deploy_schema import BPMN_NS, SPIFF_NS

FORM_PROPERTY = "formJsonSchemaFilename"


def spiff_form_file(element: etree._Element) -> str | None:
    """The form file a user task names with spiffworkflow:property formJsonSchemaFilename, if any."""
    for prop in element.iterfind(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}properties/{{{SPIFF_NS}}}property"):
        named = (prop.get("value") or "").strip() if prop.get("name") == FORM_PROPERTY else ""
        if named:
            return named
    return None
