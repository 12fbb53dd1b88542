"""docs/configuration.md is generated from the code that reads the environment and must be current."""

from __future__ import annotations

import importlib.util

from processes import ROOT


def load_tool():
    spec = importlib.util.spec_from_file_location("configuration_doc", ROOT / "tools" / "configuration_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_page_is_what_the_code_says():
    tool = load_tool()
    assert (ROOT / "docs" / "configuration.md").read_text() == tool.render(), "run `make docs` and commit the page"


def test_every_variable_of_the_contract_is_documented():
    rows = {name for source in load_tool().SOURCES for name, *_ in load_tool().settings(ROOT / source)}
    contract = {"PORT", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "JWT_SECRET_KEY", "AUTH_RATE_LIMIT", "CORS_ORIGINS",
                "ACCESS_TOKEN_MINUTES", "REFRESH_TOKEN_DAYS", "JOB_MAX_ATTEMPTS", "PRESENCE_TTL_SECONDS", "APP_ENV"}
    assert contract <= rows
