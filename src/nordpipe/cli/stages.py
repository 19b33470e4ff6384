"""``nordpipe stages``: the stage registry and each stage's pipeline parameters, from one source.

The table is generated from ``nordpipe.stages.STAGES`` and from the stage commands' own option
definitions (types, defaults, required, off-switches), which are also what ``nordpipe run``
checks a pipeline file's ``params`` against. ``README.md`` embeds the ``--markdown`` output;
a test keeps the two equal.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any

import typer

from nordpipe.cli.app import app


def _type_word(param: Any) -> str:
    if getattr(param, "is_flag", False):
        off = [o for o in getattr(param, "secondary_opts", []) if o.startswith("--")]
        return "true/false" if off else "true"
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    word = {int: "int", float: "float", str: "text", bool: "true/false"}.get(annotation, "text")
    if getattr(param, "multiple", False):
        word = "list of text"
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        word += f" {low}..{high}"
    elif low is not None:
        word += f" >= {low}"
    return word


def _first_sentence(text: str | None) -> str:
    text = " ".join((text or "").split())
    text = re.split(r"(?<!e\.g)(?<!i\.e)\. (?=[A-Z(])|; ", text, maxsplit=1)[0]
    return text.rstrip(".").replace("|", "/")


def stage_parameters(command: list[str]) -> list[tuple[str, str, str, str]]:
    """``(name, type, default, help)`` of each option a pipeline's ``params`` may set."""
    from nordpipe.cli.pipeline import command_params
    from nordpipe.pipeline import PIPELINE_SET, RUNNER_FLAGS

    stage_name = {" ".join(s.command): s.name for s in _registry().values()}[" ".join(command)]
    rows = []
    for name, param in command_params(command).items():
        if name in RUNNER_FLAGS or name in PIPELINE_SET.get(stage_name, set()) or getattr(param, "hidden", False):
            continue  # hidden: a removed option kept only to explain its removal (pii --salt)
        default = "required" if param.required else ("" if param.default in (None, False, ()) else str(param.default))
        rows.append((name, _type_word(param), default, _first_sentence(param.help)))
    return rows


def _registry() -> dict[str, Any]:
    from nordpipe.stages import STAGES

    return STAGES


def stages_markdown() -> str:
    """The README's stage table and pipeline parameter schema."""
    stages = _registry()
    lines = ["| stage (`type:`, `--from`) | command | reads | writes besides `.nordpipe/` | what it does |",
             "|---|---|---|---|---|"]
    for stage in stages.values():
        lines.append(f"| `{stage.name}` | `{stage.cli}` | {stage.reads} | {', '.join(f'`{w}`' for w in stage.writes)} "
                     f"| {stage.summary} |")
    lines.append("")
    lines.append("Parameters a pipeline file may give each stage under `params:` (ingest: under a dataset's "
                 "`params:`); values are checked with these types when the file is loaded. `true/false` options "
                 "round-trip (`false` becomes the off-switch, e.g. `--no-bos`). Resources (`tasks`, `workers`, "
                 "...) go under `resources:`.")
    for stage in stages.values():
        if not (stage.in_pipelines or stage.name == "ingest"):
            continue
        lines += ["", f"**{stage.name}** (`{stage.cli}`)", "", "| param | type | default | meaning |", "|---|---|---|---|"]
        for name, kind, default, help_text in stage_parameters(list(stage.command)):
            lines.append(f"| `{name}` | {kind} | {default} | {help_text} |")
    return "\n".join(lines) + "\n"


@app.command("stages")
def stages_command(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the README's Markdown tables.")] = False,
) -> None:
    """List the stages (one name in the CLI, pipeline files, --from/--until, stats and the report)
    and the parameters each takes in a pipeline file."""
    if markdown:
        sys.stdout.write(stages_markdown())
        return
    for stage in _registry().values():
        sys.stdout.write(f"{stage.name}\t{stage.cli}\t{stage.summary}\n")
