"""The pages of the docs site made from the code at build time: the configuration reference (from the settings
class), the HTTP API reference (from the OpenAPI document) and the benchmark results (from ``bench/results``).

MkDocs runs ``on_files`` (``hooks:`` in ``mkdocs.yml``); the tests call the page functions directly, so a setting
without a description or a route without a summary fails a test rather than leaving a gap in the docs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPOSITORY / "bench" / "results"
ENV_PREFIX = "LEPTON_"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def setting_rows() -> list[tuple[str, str, str, str]]:
    """(variable, type, default, description) of every field of ``LeptonSettings``, in declaration order."""
    from pydantic import SecretStr

    from lepton_runtime.settings import LeptonSettings

    rows = []
    for name, field in LeptonSettings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = (
            "unset"
            if default is None
            else "***"
            if isinstance(default, SecretStr)
            else json.dumps(default, default=str)
        )
        annotation = field.annotation
        kind = annotation.__name__ if isinstance(annotation, type) else str(annotation)
        kind = kind.replace("typing.", "").replace("pydantic.types.", "").replace("pathlib.", "")
        rows.append((ENV_PREFIX + name.upper(), kind, shown, field.description or ""))
    return rows


def configuration_page() -> str:
    """Markdown: every ``LEPTON_*`` variable with its type, default and description."""
    lines = [
        "# Configuration reference",
        "",
        "Every setting is an environment variable, read once by each entry point (`lepton_runtime/settings.py`, "
        "`LeptonSettings`); all are optional. `.env.example` lists them with their defaults. This page is made from "
        "the settings class when the site is built.",
        "",
        "| variable | type | default | what it does |",
        "| --- | --- | --- | --- |",
    ]
    for variable, kind, default, description in setting_rows():
        cells = (f"`{variable}`", f"`{kind}`", f"`{default}`", description.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document, as ``GET /openapi.json`` serves it (no Redis needed to build it)."""
    from lepton_runtime.settings import LeptonSettings
    from producer.api import create_app

    return create_app(LeptonSettings(api_allow_anonymous=True)).openapi()


def http_api_page(document: dict[str, Any]) -> str:
    """Markdown: every operation of the OpenAPI document with its summary, body and answers."""
    lines = [
        "# HTTP API reference",
        "",
        f"Made from the OpenAPI document of `lepton api` ({document['info']['title']} {document['info']['version']}) "
        "when the site is built; the document itself is [openapi.json](openapi.json), and a running API serves it "
        "at `/openapi.json`, with `/docs` and `/redoc`. The guide is [The HTTP API](../guide/http-api.md).",
    ]
    for path, operations in document["paths"].items():
        for method in HTTP_METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            lines += ["", f"## `{method.upper()} {path}`", "", f"**{operation.get('summary', '')}** "
                      f"(operation `{operation.get('operationId', '')}`)", ""]  # fmt: skip
            if operation.get("description"):
                lines += [operation["description"].strip().replace("``", "`"), ""]
            body = operation.get("requestBody", {}).get("content", {})
            if body:
                lines.append("Body: " + ", ".join(f"`{media}` {_schema_name(spec)}" for media, spec in body.items()))
                lines.append("")
            lines += ["| status | answer |", "| --- | --- |"]
            for status, answer in sorted(operation.get("responses", {}).items()):
                lines.append(f"| {status} | {answer.get('description', '').replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _schema_name(spec: dict[str, Any]) -> str:
    reference = spec.get("schema", {}).get("$ref", "")
    return f"(`{reference.rsplit('/', 1)[-1]}`)" if reference else ""


def results_page() -> str:
    """Markdown: an index of ``bench/results``, each table linked and each plot shown."""
    lines = [
        "# Benchmark results",
        "",
        "The files the benchmarks of `bench/` wrote, as committed; [Benchmarks](../../benchmarks.md) says how each was "
        "measured.",
        "",
    ]
    for path in sorted(RESULTS_DIR.glob("*.md")):
        lines.append(f"- [{path.stem}]({path.name})")
    for path in sorted(RESULTS_DIR.glob("*.png")):
        lines += ["", f"![{path.stem}]({path.name})"]
    return "\n".join(lines) + "\n"


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated pages and the benchmark results to the site."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, "reference/configuration.md", content=configuration_page()))
    document = openapi_document()
    files.append(File.generated(config, "reference/http-api.md", content=http_api_page(document)))
    files.append(File.generated(config, "reference/openapi.json", content=json.dumps(document, indent=2)))
    files.append(File.generated(config, "benchmarks/results/index.md", content=results_page()))
    for path in sorted(RESULTS_DIR.iterdir()):
        if path.suffix in {".md", ".png"}:
            files.append(File.generated(config, f"benchmarks/results/{path.name}", abs_src_path=str(path)))
    return files
