"""``GET /capabilities``: it needs an API key, lists exactly what the request checks refuse (the same
constants), every engine, the code-interpreter, desktop and mcp-gateway templates as the team sees them,
and the official clients the test suite pins."""

from __future__ import annotations

import json
import re
import tomllib
import uuid
from pathlib import Path

import httpx

from hutch.api.services.capabilities import (
    CODE_INTERPRETER_LANGUAGES,
    CODE_INTERPRETER_TEMPLATE,
    ENGINE_FEATURES,
    NETWORK_REFUSED,
    REFUSED,
    TESTED_SDKS,
)
from hutch.catalog import create_api_key, register_template
from hutch.interpreter import languages
from hutch.runtime.types import ENGINES
from tests.api.conftest import Caller

ROOT = Path(__file__).parents[2]
NPM_PACKAGES = Path("/var/cache/hutch/npm/e2b-cli/node_modules")


def capabilities(caller: Caller) -> dict:
    with caller.http() as client:
        response = client.get("/capabilities")
    assert response.status_code == 200, response.text
    return response.json()


def test_capabilities_need_an_api_key_and_are_in_the_openapi_document(caller: Caller) -> None:
    for headers in ({}, {"X-API-Key": "e2b_" + "0" * 40}):
        response = httpx.get(f"{caller.stack.api_url}/capabilities", headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == 401
    document = httpx.get(f"{caller.stack.api_url}/openapi.json").json()
    operation = document["paths"]["/capabilities"]["get"]
    assert operation["security"] == [{"APIKeyHeader": []}]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CapabilitiesBody"
    }


def test_the_refused_fields_are_the_refusal_constants(caller: Caller) -> None:
    found = capabilities(caller)
    assert found["unsupportedFields"] == {
        body: [{"field": field.name, "reason": field.reason} for field in fields]
        for body, fields in REFUSED.items()
    }
    assert found["network"]["unsupported"] == [field.name for field in NETWORK_REFUSED]
    assert not set(found["network"]["supported"]) & set(found["network"]["unsupported"])
    assert found["volumes"] is True and found["secrets"] is True
    assert found["templateBuilds"] == {"registryTypes": ["registry"]}
    assert found["cluster"] is False


def test_every_engine_is_described(caller: Caller) -> None:
    assert set(ENGINE_FEATURES) == set(ENGINES)
    engines = capabilities(caller)["engines"]
    assert list(engines) == list(ENGINES)
    assert engines["crun"] == {
        "pauseModes": ["full", "filesystem"],
        "snapshotModes": ["filesystem"],
        "forkMode": "filesystem",
    }
    assert engines["gvisor"] == {
        "pauseModes": ["full", "filesystem"],
        "snapshotModes": ["full", "filesystem"],
        "forkMode": "full",
    }


def test_desktop_code_interpreter_and_mcp_follow_the_teams_templates(caller: Caller) -> None:
    found = capabilities(caller)
    assert found["desktop"] is False and found["mcp"] is False
    assert found["codeInterpreter"] == {
        "template": "code-interpreter-v1",
        "available": False,
        "languages": list(CODE_INTERPRETER_LANGUAGES),
    }
    stack = caller.stack
    team = f"team-{uuid.uuid4().hex}"
    owner = Caller(stack, stack.run(create_api_key(stack.app.state.catalog, team_name=team)))
    for name in ("desktop", CODE_INTERPRETER_TEMPLATE, "mcp-gateway"):
        template_id = f"{team[:12]}{name[:8]}".replace("-", "")
        stack.run(
            register_template(
                stack.app.state.catalog,
                template_id=template_id,
                aliases=[name],
                rootfs="/",
                public=False,
                team_name=team,
            )
        )
    mine = capabilities(owner)
    assert mine["desktop"] is True and mine["codeInterpreter"]["available"] is True and mine["mcp"] is True
    # Another team does not see them.
    theirs = capabilities(caller)
    assert theirs["desktop"] is False and theirs["codeInterpreter"]["available"] is False
    assert theirs["mcp"] is False


def test_the_languages_are_the_interpreters() -> None:
    assert set(CODE_INTERPRETER_LANGUAGES) == {
        languages.PYTHON,
        languages.BASH,
        languages.JAVASCRIPT,
        languages.TYPESCRIPT,
        languages.R,
        languages.JAVA,
    }


def test_the_tested_sdks_are_the_pinned_ones(caller: Caller) -> None:
    assert capabilities(caller)["testedSdks"] == TESTED_SDKS
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(
        requirement.split("==")
        for requirement in project["optional-dependencies"]["test"]
        if requirement.startswith("e2b") and not requirement.startswith("e2b-charts")  # a library, no SDK
    )
    assert pins == TESTED_SDKS["pypi"]
    installers = {"install-e2b-cli.sh": "@e2b/cli", "install-e2b-desktop-js.sh": "@e2b/desktop"}
    for script, package in installers.items():
        installer = (ROOT / "scripts" / script).read_text()
        assert re.search(r"^version=(\S+)$", installer, re.M).group(1) == TESTED_SDKS["npm"][package]
    sdk = NPM_PACKAGES / "e2b" / "package.json"
    if sdk.exists():  # the CLI's own e2b, once scripts/install-e2b-cli.sh installed it
        assert json.loads(sdk.read_text())["version"] == TESTED_SDKS["npm"]["e2b"]
