"""MkDocs hook: the job spec reference and the JSON Schema on docs/reference/job-spec.md, generated from the
pydantic models at build time (orchestrator.job.schema), so no field is documented twice by hand."""

from __future__ import annotations

import json

MARKER = "<!-- generated: job spec reference -->"
SCHEMA_MARKER = "<!-- generated: json schema -->"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown and SCHEMA_MARKER not in markdown:
        return markdown
    from orchestrator.job import schema

    markdown = markdown.replace(MARKER, schema.reference_markdown())
    fenced = "```json\n" + json.dumps(schema.json_schema(), indent=2, sort_keys=True) + "\n```"
    return markdown.replace(SCHEMA_MARKER, fenced)
