"""openapi.yaml is the contract: it must be exactly what the app serves."""

from __future__ import annotations

from pathlib import Path

import yaml

from access_api.cli import openapi_document
from access_api.domain.audit import Action

ROOT = Path(__file__).resolve().parents[2]


def test_openapi_yaml_matches_the_app() -> None:
    committed = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    assert committed == openapi_document(), "run `make openapi` and commit openapi.yaml"


def test_every_operation_documents_its_problems() -> None:
    document = openapi_document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith(("/healthz", "/metrics", "/problems")):
                continue
            problems = [
                status
                for status, response in operation["responses"].items()
                if "application/problem+json" in response.get("content", {})
            ]
            assert problems, f"{method.upper()} {path} documents no problem response"


def test_the_audit_events_operation_documents_every_action_and_its_target() -> None:
    operation = openapi_document()["paths"]["/v1/tenants/{tenant_id}/audit-events"]["get"]
    for action in Action:
        assert f"| `{action.value}` | `{action.target_type}` |" in operation["description"]
