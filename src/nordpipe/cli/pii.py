"""``nordpipe pii``: replace personal data by tags or fake values."""

from __future__ import annotations

from typing import Annotated

import typer

from nordpipe.cli.app import app
from nordpipe.cli.common import (
    RUN_OPTIONS,
    InputArg,
    JsonOpt,
    OutputArg,
    finish,
    stage_command,
    with_run_options,
)
from nordpipe.pii import ENGINES
from nordpipe.pii.recognizers import ALL_ENTITIES
from nordpipe.pii.replace import MODES
from nordpipe.runner import RunOptions

_ENTITY_HELP = ", ".join(ALL_ENTITIES)


def _parse_entities(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    names = [v.strip().upper() for value in values for v in value.split(",") if v.strip()]
    unknown = sorted(set(names) - set(ALL_ENTITIES))
    if unknown:
        raise typer.BadParameter(f"unknown entity types {', '.join(unknown)}; known: {_ENTITY_HELP}", param_hint="--entities")
    return names


def _parse_modes(values: list[str] | None) -> dict[str, str]:
    modes: dict[str, str] = {}
    for value in values or []:
        for item in value.split(","):
            entity, sep, mode = item.partition("=")
            entity, mode = entity.strip().upper(), mode.strip().lower()
            if not sep or entity not in ALL_ENTITIES or mode not in MODES:
                raise typer.BadParameter(
                    f"{item!r}: expected ENTITY=MODE with ENTITY in {_ENTITY_HELP} and MODE tag or fake",
                    param_hint="--mode-for",
                )
            modes[entity] = mode
    return modes


@app.command("pii")
@stage_command
@with_run_options(removes_documents=False)
def pii_command(
    input_path: InputArg,
    output_path: OutputArg,
    mode: Annotated[str, typer.Option(
        "--mode", "-m", case_sensitive=False,
        help="tag: write <CPR>, <PHONE>, <NAME>...; fake: write fictional values of the same type and format "
        "(valid check digits, consistent within a document).")] = "tag",
    mode_for: Annotated[list[str] | None, typer.Option(
        "--mode-for", help="Per-entity mode, e.g. NAME=tag (repeatable or comma-separated).")] = None,
    entities: Annotated[list[str] | None, typer.Option(
        "--entities", "-e", help=f"Entity types to replace (repeatable or comma-separated) [default: all: {_ENTITY_HELP}].",
        show_default=False)] = None,
    audit: Annotated[str | None, typer.Option(
        "--audit", help="Write every replaced span (document id, field, offsets, type, recognizer, replacement, keyed "
        "hash of the original with a key -- never the original -- and the old id of a replaced id) to this jsonl file, "
        "mode 0600. Keep it access-restricted.")] = None,
    ner_model: Annotated[str | None, typer.Option(
        "--ner-model", help="Local spaCy pipeline or Hugging Face token-classification model directory used for names "
        "instead of the built-in name lists and rules, or 'tagger' for the built-in rules plus the shipped name "
        "tagger (better on Bokmål and Nynorsk, slower).")] = None,
    key_file: Annotated[str | None, typer.Option(
        "--key-file", help="File holding the secret key for audit hashes, replaced ids and fake values (readable by its "
        "owner only: a group- or world-readable file is refused). Never written anywhere. Without a key the audit has "
        "no hashes and fakes are seeded per document only.")] = None,
    key_env: Annotated[str | None, typer.Option(
        "--key-env", help="Name of the environment variable holding the secret key (instead of --key-file).")] = None,
    salt: Annotated[str | None, typer.Option(
        "--salt", hidden=True, help="Removed: a secret on the command line shows in ps and shell history.")] = None,
    fields: Annotated[list[str] | None, typer.Option(
        "--fields", help="Metadata fields to scan, repeatable or comma-separated [default: every string field, "
        "recursively, but license, dataset, language, source, dates and nordpipe's bookkeeping]. A name matches that "
        "key at any depth, a dotted path that path and below, * is a wildcard, none scans the text only.",
        show_default=False)] = None,
    skip_fields: Annotated[list[str] | None, typer.Option(
        "--skip-fields", help="Metadata fields not to scan, same syntax as --fields (id keeps document ids as they "
        "are).")] = None,
    engine: Annotated[str, typer.Option(
        "--engine", case_sensitive=False,
        help="fast (nordpipe's scanner) or presidio (the same recognizers in presidio's offline AnalyzerEngine, no spaCy "
        "model, same output, slower, extensible with --recognizers).")] = "fast",
    recognizers: Annotated[str | None, typer.Option(
        "--recognizers", help="Presidio recognizer YAML (the format of RecognizerRegistry.add_recognizers_from_yaml) whose entity "
        "types are replaced by <ENTITY> tags too, with --engine presidio.")] = None,
    options: RunOptions = RUN_OPTIONS,
    as_json: JsonOpt = False,
) -> None:
    """Replace personal data in Danish, Norwegian, Swedish, Finnish and Icelandic text.

    Finds national identifiers by their check digits (CPR, fødselsnummer/D-number,
    personnummer/samordningsnummer, HETU, kennitala), phone numbers, e-mail addresses, IBAN and
    bank accounts, IP addresses, payment cards and person names, and replaces them by tags or
    fake values, in the text and in metadata fields, URLs (query, fragment, path), file names
    and document ids (an id with personal data becomes pii-<keyed hash>). Dates, prices, years,
    postal codes and case numbers are left alone. Runs offline. Counts per entity type are in the summary, OUTPUT/.nordpipe/stats.json and each
    document's metadata.nordpipe.pii.
    """
    from nordpipe.pii.keys import KeyProblem, read_key
    from nordpipe.pii.step import run_pii

    if salt is not None:
        raise typer.BadParameter("--salt was removed: a secret on the command line shows in `ps` and shell history; "
                                 "put the key in a file only you can read (--key-file PATH, chmod 600) or in an "
                                 "environment variable (--key-env NAME)", param_hint="--salt")
    try:
        read_key(key_file, key_env)
    except KeyProblem as err:
        raise typer.BadParameter(str(err), param_hint="--key-file" if key_file else "--key-env") from None
    mode = mode.lower()
    if mode not in MODES:
        raise typer.BadParameter(f"{mode!r} is not one of tag, fake", param_hint="--mode")
    engine = engine.lower()
    if engine not in ENGINES:
        raise typer.BadParameter(f"{engine!r} is not one of {', '.join(ENGINES)}", param_hint="--engine")
    if recognizers and engine != "presidio":
        raise typer.BadParameter("needs --engine presidio", param_hint="--recognizers")
    if recognizers:
        from nordpipe.pii.presidio import RecognizerFileError, load_user_recognizers

        try:
            load_user_recognizers(recognizers)
        except RecognizerFileError as err:
            raise typer.BadParameter(str(err), param_hint="--recognizers") from None
    stats = run_pii(
        input_path, output_path, options, mode=mode, modes=_parse_modes(mode_for), entities=_parse_entities(entities),
        ner_model=ner_model, audit=audit, key_file=key_file, key_env=key_env, engine=engine, recognizers=recognizers,
        fields=fields, skip_fields=skip_fields,
    )
    finish(stats, strict=options.strict, as_json=as_json)
