"""The settings: read from the environment in one place, with the defaults the README documents, and a
value that does not parse named before anything starts."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from usm_engine.api.settings import SettingsError, settings_from_env
from usm_engine.engine.sandbox import RestrictedEnvironment
from usm_engine.engine.script_limits import ScriptLimitExceeded
from usm_engine.engine.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_defaults() -> dict[str, str | None]:
    """variable -> default ("unset": None) from the README's configuration table."""
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", README.read_text(), flags=re.MULTILINE)
    return {name: None if value.strip() == "unset" else value.strip().strip("`") for name, value in rows
            if name.startswith("USM_") or name == "USER"}


def test_the_readme_documents_the_defaults_the_settings_have():
    documented = documented_defaults()
    assert len(documented) == 21, documented
    set_to_documented = {name: value for name, value in documented.items() if value is not None}
    assert settings_from_env({}, set_to_documented) == settings_from_env({}) == Settings()


def test_a_value_that_does_not_parse_is_named():
    with pytest.raises(SettingsError, match="USM_MAX_PAGE_SIZE must be a whole number of 1 or more, not 'many'"):
        settings_from_env({"USM_MAX_PAGE_SIZE": "many"})
    with pytest.raises(SettingsError, match="USM_SCRIPT_TIME_LIMIT must be a number of 0 or more, not '2s'"):
        settings_from_env({"USM_SCRIPT_TIME_LIMIT": "2s"})


@pytest.mark.parametrize(("variable", "value", "wanted"), [
    ("USM_WORKFLOW_CACHE_MB", "-1", "a whole number of 0 or more"),  # was taken as "keep nothing"
    ("USM_SCRIPT_MAX_ITEMS", "-5", "a whole number of 0 or more"),
    ("USM_MAX_PAGE_SIZE", "-1", "a whole number of 1 or more"),
    ("USM_MAX_PAGE_SIZE", "0", "a whole number of 1 or more"),
    ("USM_DB_POOL_SIZE", "0", "a whole number of 1 or more"),  # SQLAlchemy reads 0 as no bound at all
    ("USM_MAX_BODY_BYTES", "-100", "a whole number of 1 or more"),
    ("USM_SCRIPT_TIME_LIMIT", "-2", "a number of 0 or more"),
    ("USM_SESSION_HOURS", "inf", "a number of 0 or more"),
    ("USM_SESSION_HOURS", "nan", "a number of 0 or more"),
])
def test_a_value_out_of_range_is_refused_at_start_up(variable, value, wanted):
    with pytest.raises(SettingsError, match=f"{variable} must be {wanted}, not '{value}'"):
        settings_from_env({variable: value})


def test_zero_is_taken_where_it_means_something():
    assert settings_from_env({"USM_WORKFLOW_CACHE_MB": "0"}).engine.workflow_cache_bytes == 0  # no live workflows


def test_overrides_win_over_the_environment_and_none_unsets():
    settings = settings_from_env({"USM_ADMIN_TOKEN": "from-env", "USM_MAX_ELEMENTS": "10"},
                                 {"USM_ADMIN_TOKEN": None, "USM_MAX_ELEMENTS": 20})
    assert settings.admin_token is None and settings.engine.limits.max_elements == 20


def test_script_limits_from_the_environment_bound_the_sandbox():
    limits = settings_from_env({"USM_SCRIPT_MAX_ITEMS": "1000"}).engine.script_limits
    assert limits.max_items == 1000
    with pytest.raises(ScriptLimitExceeded, match="size limit of 1000 items"):
        RestrictedEnvironment(limits=limits).execute("text = 'x' * 1001", {})
    data: dict = {}
    RestrictedEnvironment().execute("text = 'x' * 1001", data)  # the default limit is far higher
    assert len(data["text"]) == 1001
