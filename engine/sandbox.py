"""Run BPMN scripts and expressions under RestrictedPython, in a sandbox process unless they are plain.

SpiffWorkflow evaluates script tasks, sequence-flow conditions, timer expressions, multi-instance
expressions and the like with bare `exec`/`eval`, i.e. with the full privileges of the engine
process: `import os`, `open(...)` and `().__class__.__base__.__subclasses__()` all work. Swapping the
builtins is not enough, because the attribute escapes do not need any builtin; only compiling with
RestrictedPython, which rewrites every attribute, item, iteration and write into a call to a guard,
closes them (restricted.py).

RestrictedPython does not bound time or memory for real, so every script, and every expression that is
not plain (plain_expressions.py), runs in a sandbox process with OS limits that the server kills when it
overruns (script_process.py). Plain expressions, the conditions of nearly every gateway, run here.

SpiffWorkflow does not serialize the script engine: a restored workflow silently falls
back to the unrestricted default. The engine therefore attaches its `make_script_engine()` to every
workflow it creates *and* to every workflow it restores.

Script locals become task data and SpiffWorkflow only removes callables, so after each
script we also drop everything that is not JSON data; otherwise modules or arbitrary objects would
travel with the case and break (or bloat) its serialization.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment

from .data_limits import MAX_DATA_DEPTH
from .plain_expressions import is_plain
from .restricted import COMPILE_CACHE_SIZE, drop_non_json, guards, is_json_value
from .restricted import compile_script as _compile
from .script_limits import SCRIPT_FILENAME
from .script_process import raise_script_error, run_in_sandbox
from .script_wire import from_wire, to_wire
from .settings import MIB, ScriptLimits

__all__ = [
    "COMPILE_CACHE_SIZE",
    "RestrictedEnvironment",
    "SCRIPT_FILENAME",
    "is_json_value",
    "make_script_engine",
]


class RestrictedEnvironment(TaskDataEnvironment):
    """A TaskDataEnvironment whose scripts and expressions are compiled with RestrictedPython.

    `environment_globals` are extra names (trusted helper functions, constants) made visible to
    scripts, exactly as with TaskDataEnvironment; they cannot replace the guards.

    `limits` bound the time, memory and value sizes of each script and expression.

    Holds no per-call state, so one instance can serve any number of threads and workflows.
    """

    def __init__(self, environment_globals: dict[str, Any] | None = None, limits: ScriptLimits | None = None,
                 max_data_bytes: int = MIB):
        extra = dict(environment_globals or {})
        self._limits = limits or ScriptLimits()
        self._max_data_bytes = max_data_bytes
        self._guards = guards(self._limits)
        clash = set(extra).intersection(self._guards)
        if clash:
            raise ValueError(f"environment globals may not replace sandbox names: {sorted(clash)}")
        # Callables run here when a script calls them; values travel to the sandbox with the task data.
        self._helpers = {name: value for name, value in extra.items() if callable(value)}
        self._constants = {name: value for name, value in extra.items() if not callable(value)}
        super().__init__({**extra, **self._guards})

    def evaluate(self, expression: str, context: dict, external_context: dict | None = None) -> Any:
        # Built-in eval() ignores leading blanks, which condition text in BPMN files often has
        # (indented or on its own line); ast.parse would call that an IndentationError.
        if isinstance(expression, str):
            expression = expression.strip()
        code = _compile(expression, "eval")  # a syntax error is raised here, with its line
        self._prepare_context(context)
        if is_plain(expression):
            return eval(code, {**self.globals, **(external_context or {}), **context, **self._guards})
        reply = self._run("eval", expression, context, external_context)
        return from_wire(reply["value"])

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        _compile(script, "exec")
        external_context = external_context or {}
        self.check_for_overwrite(context, external_context)
        self._prepare_context(context)
        drop_non_json(context)  # only data goes to the sandbox, and only data comes back
        reply = self._run("exec", script, context, external_context)
        context.clear()
        context.update(from_wire(reply["context"]))
        return True

    def _run(self, mode: str, source: str, context: dict, external_context: dict | None) -> dict:
        """Run in a sandbox process; the script's own error is raised here as if from its line."""
        external = {**self._constants, **(external_context or {})}
        drop_non_json(external)
        request = {"mode": mode, "source": source, "context": to_wire(context), "external": to_wire(external),
                   "max_depth": MAX_DATA_DEPTH}
        reply = run_in_sandbox(request, self._limits, self._helpers, self._max_data_bytes)
        if "error" in reply:
            if mode == "exec" and "context" in reply:
                context.clear()
                context.update(from_wire(reply["context"]))  # what the script set before it failed stays
            raise_script_error(reply["error"], SCRIPT_FILENAME)
        return reply


def make_script_engine(helpers: dict[str, Callable[..., Any]] | None = None,
                       limits: ScriptLimits | None = None, max_data_bytes: int = MIB) -> PythonScriptEngine:
    """The script engine for every workflow the engine creates or restores. `helpers` are trusted
    functions scripts may call (e.g. the engine's call-number sequence); `limits` bound every script;
    no value a script leaves may take more than `max_data_bytes` as JSON."""
    return PythonScriptEngine(environment=RestrictedEnvironment(helpers, limits, max_data_bytes))
