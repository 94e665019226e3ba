"""The settings from the environment: the one place that reads it (README.md, "Configuration", lists the
same variables). A variable that is unset or empty keeps the default of engine/settings.py."""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from usm_engine.engine.settings import MIB, EngineSettings, Limits, ScriptLimits, Settings


class SettingsError(ValueError):
    """A variable's value cannot be read; the message names the variable."""


def _text(raw: object) -> str:
    return str(raw)


def _whole_number(raw: object, least: int = 0) -> int:
    """A count or a size: a negative one would be taken as a number and silently mean something else (no
    limit, nothing kept), so it is refused with the rest of what does not parse."""
    wanted = f"a whole number of {least} or more"
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValueError(wanted) from None
    if value < least:
        raise ValueError(wanted)
    return value


def _at_least_one(raw: object) -> int:
    """A pool, a page, a body or a file limit of 0 would refuse everything (or, for the pool, lift its bound)."""
    return _whole_number(raw, least=1)


def _number(raw: object) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ValueError("a number of 0 or more") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError("a number of 0 or more")
    return value


def _yes_no(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false (1/0, yes/no, on/off)")


def _megabytes(raw: object) -> int:
    return _whole_number(raw) * MIB


Fields = Mapping[str, tuple[str, Callable[[object], Any]]]


def _read(values: Mapping[str, object], fields: Fields) -> dict[str, Any]:
    """{field: value} for each field whose variable is set; the others keep their defaults."""
    read = {}
    for name, (variable, parse) in fields.items():
        raw = values.get(variable)
        if raw is None or raw == "":
            continue
        try:
            read[name] = parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{variable} must be {exc}, not '{raw}'") from None
    return read


def settings_from_env(environ: Mapping[str, str] = os.environ,
                      overrides: Mapping[str, object] | None = None) -> Settings:
    """The settings from `environ`, with `overrides` (by variable name; None means unset) on top.
    Raises SettingsError naming the variable whose value does not parse."""
    values = {**environ, **(overrides or {})}
    script_limits = ScriptLimits(**_read(values, {
        "seconds": ("USM_SCRIPT_TIME_LIMIT", _number),
        "memory_bytes": ("USM_SCRIPT_MEMORY_LIMIT_MB", _megabytes),
        "max_items": ("USM_SCRIPT_MAX_ITEMS", _whole_number),
        "max_helper_calls": ("USM_SCRIPT_MAX_HELPER_CALLS", _whole_number)}))
    limits = Limits(**_read(values, {
        "max_file_bytes": ("USM_MAX_DEFINITION_BYTES", _at_least_one),
        "max_elements": ("USM_MAX_ELEMENTS", _at_least_one)}))
    engine = EngineSettings(limits=limits, script_limits=script_limits, **_read(values, {
        "database_url": ("USM_DATABASE_URL", _text),
        "pool_size": ("USM_DB_POOL_SIZE", _at_least_one),
        "max_case_data_bytes": ("USM_MAX_CASE_DATA_BYTES", _at_least_one),
        "max_instances": ("USM_MAX_INSTANCES", _at_least_one),
        "workflow_cache_bytes": ("USM_WORKFLOW_CACHE_MB", _megabytes),
        "java_as_external_tasks": ("USM_JAVA_AS_EXTERNAL_TASKS", _yes_no),
        "unimplemented_as_external_tasks": ("USM_UNIMPLEMENTED_AS_EXTERNAL_TASKS", _yes_no)}))
    return Settings(engine=engine, **_read(values, {
        "admin_token": ("USM_ADMIN_TOKEN", _text),
        "tokens_file": ("USM_TOKENS_FILE", _text),
        "max_body_bytes": ("USM_MAX_BODY_BYTES", _at_least_one),
        "max_page_size": ("USM_MAX_PAGE_SIZE", _at_least_one),
        "access_log": ("USM_ACCESS_LOG", _text),
        "session_secret": ("USM_SESSION_SECRET", _text),
        "session_hours": ("USM_SESSION_HOURS", _number),
        "operator": ("USER", _text)}))
