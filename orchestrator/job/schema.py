"""The job spec's JSON Schema and its reference page, both generated from the pydantic models in spec.py.

    json_schema() -> dict          what ``orchestrator schema`` prints and schemas/job.schema.json holds: the
                                   YAML language server validates and completes jobs/*.yaml with it
    reference_markdown() -> str    every field of every block, its type, default, constraint and meaning,
                                   for the documentation site (scripts/docs_hooks.py renders it; nothing is written
                                   twice by hand)

The schema describes the fields, their types, enums and ranges; the checks across fields (a strategy that
belongs to its framework, a global batch that divides every worker count...) are the spec's own and run when
a job is loaded: ``orchestrator sweep JOB --dry-run`` is the full check.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from orchestrator import __version__
from orchestrator.job import spec

SCHEMA_ID = "https://github.com/orchestrator/orchestrator/schemas/job.schema.json"
FILE = "schemas/job.schema.json"
"""Where the schema ships in the repository (``make schema`` writes it; a test holds it to the models)."""


def json_schema() -> dict:
    """The job file's JSON Schema (draft 2020-12), with the orchestrator version that wrote it."""
    schema = spec.JobSpec.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "orchestrator job spec", "x-orchestrator-version": __version__, **schema}


def text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


# --- the reference page ----------------------------------------------------------------------------------------

def _models() -> list[tuple[str, type[BaseModel]]]:
    """Each block of a job file with the path it sits at, in the order a job file reads."""
    found: list[tuple[str, type[BaseModel]]] = []

    def visit(path: str, model: type[BaseModel]) -> None:
        if any(m is model for _, m in found):
            return
        found.append((path, model))
        for name, info in model.model_fields.items():
            for inner in _nested(info.annotation):
                visit(f"{path}.{info.alias or name}" if path else (info.alias or name), inner)

    visit("", spec.JobSpec)
    return found


def _nested(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) or () for m in _nested(arg)]


def _type(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("orchestrator.job.spec.", "")
    for old, new in (("<class '", ""), ("'>", ""), ("NoneType", "null")):
        text = text.replace(old, new)
    return text


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        try:
            value = info.default_factory()
        except TypeError:
            return "(computed)"
        return f"`{json.dumps(value.model_dump(by_alias=True, exclude_none=True) if isinstance(value, BaseModel) else value)}`"
    if info.default is PydanticUndefined:
        return "required"
    return f"`{json.dumps(info.default)}`"


def _constraints(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        for key, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "min length"),
                            ("max_length", "max length"), ("pattern", "pattern")):
            value = getattr(item, key, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return ", ".join(parts)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def reference_markdown() -> str:
    """The job spec reference: one table per block, every field."""
    lines = [f"Generated from `orchestrator/job/spec.py` (orchestrator {__version__}) by `orchestrator.job.schema`; "
             "the cross-field checks are listed in each block's description and run when a job is loaded.", ""]
    for path, model in _models():
        title = path or "top level"
        lines += [f"## `{title}`", ""]
        doc = " ".join((model.__doc__ or "").split())
        if doc:
            lines += [_cell(doc), ""]
        lines += ["| field | type | default | constraint | meaning |", "|---|---|---|---|---|"]
        for name, info in model.model_fields.items():
            lines.append(f"| `{info.alias or name}` | `{_cell(_type(info.annotation))}` | {_default(info)} | "
                         f"{_cell(_constraints(info))} | {_cell(info.description or '')} |")
        lines.append("")
    return "\n".join(lines)
