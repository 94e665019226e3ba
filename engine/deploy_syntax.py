"""Every script and expression of a process is compiled at deploy, and one the sandbox would not run is a
located warning.

The sandbox compiles a script or expression with RestrictedPython the first time a case reaches it; a
syntax error, or a construct the sandbox never runs (a name beginning with `_`, `exec`), surfaced only
then, as an incident on a case, though the deployment could have seen it. Here each one a case could run
is compiled as the sandbox compiles it: script tasks' scripts, pre- and post-scripts, the conditions of
gateways and conditional events, message payloads, timers, loop and multi-instance expressions. It is a
warning, not a refusal: models drawn elsewhere often carry prose or another language in a branch a case
may never take (`Service Level == 'Premium'`, a cron text on a timer), and they deploy as before.
"""
from __future__ import annotations


from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec

from .deploy_files import Bundle
from .deploy_problems import DeployProblem, describe
from .restricted import compile_script
from .task_sources import task_sources


def syntax_warnings(bundle: Bundle, specs: list[BpmnProcessSpec]) -> list[DeployProblem]:
    """A warning for each script or expression of these specs that the sandbox would not compile."""
    problems = []
    for spec in specs:
        for task_spec in spec.task_specs.values():
            element_id = getattr(task_spec, "bpmn_id", None)
            if not element_id:
                continue
            for what, source, mode in task_sources(task_spec):
                try:
                    compile_script(source, mode)
                except SyntaxError as exc:
                    file, element = bundle.element(element_id, spec.file)
                    where = describe(element) if element is not None else f"element '{element_id}'"
                    text = " ".join(source.split())
                    text = text if len(text) <= 80 else text[:77] + "..."
                    problems.append(DeployProblem(
                        file or spec.file, f"{where}: its {what} '{text}' is not Python the sandbox runs "
                        f"({exc.msg}): a case that reaches it stops there with an incident; correct it, or write it in "
                        "Python", element.sourceline
                        if element is not None else None, element_id))
    return problems
