"""Datasheets: ``ROOT/NAME/README.md`` with Hugging Face-style YAML front matter and statistics.

``language`` lists the config's codes as ``nordpipe.languages.datasheet_code`` gives them (ISO
639-1; ``no``, Norwegian in both written forms, stays ``no`` as the Hub uses it), else the
default language."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import yaml

from nordpipe.languages import DEFAULT_LANGUAGE

if TYPE_CHECKING:
    from nordpipe.ingest import IngestConfig

REQUIRED_FIELDS = ("pretty_name", "language", "license", "size_categories", "task_categories", "task_ids")

_SIZE_BOUNDS = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
]


def size_category(count: int) -> str:
    """Hugging Face ``size_categories`` label for a record count."""
    for bound, label in _SIZE_BOUNDS:
        if count < bound:
            return label
    return "n>10B"


def front_matter(config: IngestConfig, stats: dict[str, Any]) -> dict[str, Any]:
    matter: dict[str, Any] = {
        "pretty_name": config.pretty_name or config.dataset,
        "language": list(config.language) or [DEFAULT_LANGUAGE],
        "license": config.license or "other",
    }
    if matter["license"] == "other":
        matter["license_name"] = config.license_name or "unknown (set license in pipelines/datasets/<name>.yaml)"
    matter["size_categories"] = [size_category(int(stats.get("documents_out", 0)))]
    matter["task_categories"] = list(config.task_categories)
    matter["task_ids"] = list(config.task_ids)
    return matter


def render_datasheet(config: IngestConfig, stats: dict[str, Any]) -> str:
    matter = yaml.safe_dump(front_matter(config, stats), sort_keys=False, allow_unicode=True)
    docs = int(stats.get("documents_out", 0))
    chars = int(stats.get("characters_out", 0))
    created = f"{stats.get('created_min')} to {stats.get('created_max')}" if stats.get("created_min") else "unknown"
    quarantined = int(stats.get("quarantined_total", 0))
    lines = [
        "---",
        matter.rstrip(),
        "---",
        "",
        f"# {config.pretty_name or config.dataset}",
        "",
        config.description or f"The `{config.dataset}` dataset in nordpipe's standardized format.",
        "",
        "## Statistics",
        "",
        "| | |",
        "|---|---|",
        f"| records | {docs:,} |",
        f"| characters | {chars:,} |",
        f"| mean characters per record | {chars // docs if docs else 0:,} |",
        f"| created | {created} |",
        f"| languages | {', '.join(config.language) or 'unspecified'} |",
        f"| quarantined at ingest | {quarantined:,} |",
        "",
        "Records are in `documents/*.jsonl.gz` (fields `id`, `text`, `source`, `added`, `created`, `metadata`,",
        "the last a JSON object encoded as a string so that every file loads with one schema);",
        "records that failed validation are in `quarantine/` with file, line and reason.",
        "",
    ]
    return "\n".join(lines)


def write_datasheet(dataset_dir: str, config: IngestConfig, stats: dict[str, Any]) -> str:
    path = os.path.join(dataset_dir, "README.md")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(render_datasheet(config, stats))
    os.replace(tmp, path)
    return path


def parse_front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a datasheet; raises ``ValueError`` with the reason."""
    if not text.startswith("---\n"):
        raise ValueError("no YAML front matter (the file must start with '---')")
    end = text.find("\n---", 4)
    if end == -1:
        raise ValueError("front matter is not closed by '---'")
    try:
        data = yaml.safe_load(text[4:end])
    except yaml.YAMLError as err:
        raise ValueError(f"front matter is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError("front matter is not a mapping")
    return data


def check_datasheet(path: str) -> list[str]:
    """Problems with a datasheet (empty list: fine)."""
    try:
        with open(path, encoding="utf-8") as handle:
            matter = parse_front_matter(handle.read())
    except FileNotFoundError:
        return [f"{path}: datasheet missing"]
    except (ValueError, UnicodeDecodeError) as err:
        return [f"{path}: {err}"]
    problems = [f"{path}: front matter lacks {field!r}" for field in REQUIRED_FIELDS if field not in matter]
    if matter.get("license") == "other" and not matter.get("license_name"):
        problems.append(f"{path}: license: other needs license_name")
    for field in ("language", "size_categories", "task_categories", "task_ids"):
        if field in matter and not isinstance(matter[field], list):
            problems.append(f"{path}: {field} should be a list")
    return problems
