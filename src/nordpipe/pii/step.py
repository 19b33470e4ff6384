"""The datatrove step of the PII stage: find personal data and replace it in place.

Everything a document carries is redacted, not only ``text``: the selected metadata strings,
URLs (pieces percent-decoded, replacements re-encoded), file names and the id (``fields``),
and the stage's own ``quarantine/`` records (the raw line, the file name and the reason are
scanned and replaced like text; an undecodable line is decoded with U+FFFD replacement
characters, redacted and written as ``raw`` with ``raw_lossy: true`` instead of ``raw_base64``).
Documents that arrive already removed are redacted too, so ``removed/`` shows nothing either.

Secrets: the step holds the *path* of the key file or the *name* of the environment variable
(``keys``), never the key, and reads it inside the task; so ``executor.json`` (datatrove's
serialization of the steps), pickles shipped to workers and logs cannot contain it. Audit parts
are written 0600 in 0700 folders (``OUTPUT/.nordpipe/pii/audit/``) and deleted once merged into
``--audit FILE``: the old -> new id mapping is then only in that file.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
from collections import Counter
from typing import Any

import orjson
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from nordpipe.documents import INPUT_KEY, NORDPIPE_KEY, QUARANTINE_KEY, mark_removed, nordpipe_meta
from nordpipe.layout import OutputLayout
from nordpipe.pii import ENGINES
from nordpipe.pii.engine import PiiScanner
from nordpipe.pii.fields import ID_PREFIX, FieldRedactor, FieldSelection, Found, may_hold_pii, scan_glued
from nordpipe.pii.keys import key_id, keyed_hex, open_private, private_dir, read_key
from nordpipe.pii.replace import Replacer, _normalise
from nordpipe.process_cache import file_identity, shared
from nordpipe.steps import DocumentReader, is_active

_URL_IN_TEXT = re.compile(r"(?:https?|ftp)://[^\s\"'<>\\]+|www\.[^\s\"'<>\\]+")


def hash_original(key: bytes, entity: str, value: str) -> str:
    """Keyed hash of an original value for the audit (HMAC-SHA256, 32 hex digits): equal
    values hash equal under the same key; without the key a guess cannot be tested."""
    return keyed_hex(key, "hash", f"{entity}\x00{_normalise(entity, value)}")


class PiiReplace(PipelineStep):
    """Replace personal data in documents' text, metadata, URLs and ids by tags or fake values.

    Args:
        mode: ``tag`` (default; ``<CPR>``, ``<NAME>``...) or ``fake`` (same-format fictional
            values, consistent within a document).
        modes: per-entity overrides, e.g. ``{"NAME": "tag"}``.
        entities: entity types to find (default: all, see ``recognizers.ALL_ENTITIES``).
        ner_model: "tagger" (the built-in rules plus the shipped name tagger,
            ``name_model.NameTagger``), a tagger model file (``*.json.gz``), or a local spaCy
            pipeline or Hugging Face token-classification model directory used for names
            instead of the built-in method (default None: the rules alone).
        audit_dir: write one ``<rank>.jsonl`` per task (0600, folder 0700) with every span
            (document id as written, field, offsets, type, recognizer, replacement, the keyed
            hash of the original when there is a key; never the original) and, for a replaced
            id, the old id (default None: no audit).
        key_file / key_env: where the task reads the secret key (``keys.read_key``); the key
            itself is never an attribute of the step.
        fields / skip_fields: the metadata fields scanned (``fields.FieldSelection.parse``;
            default every string field but the safe ones).
        engine: ``fast`` (default; ``PiiScanner``) or ``presidio`` (the same recognizers in
            presidio's offline AnalyzerEngine, ``pii.presidio.PresidioScanner``; same output).
        recognizers: with ``engine="presidio"``, a presidio recognizer YAML whose entity types
            are replaced by ``<ENTITY>`` tags too.

    Counts per entity type (text and fields together) go to the step's stats and to
    ``metadata["nordpipe"]["pii"]``.
    """

    type = "🔒 - PII"
    name = "pii"

    def __init__(
        self,
        mode: str = "tag",
        modes: dict[str, str] | None = None,
        entities: list[str] | None = None,
        ner_model: str | None = None,
        audit_dir: str | None = None,
        key_file: str | None = None,
        key_env: str | None = None,
        engine: str = "fast",
        recognizers: str | None = None,
        fields: list[str] | None = None,
        skip_fields: list[str] | None = None,
    ):
        super().__init__()
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r} (use {' or '.join(ENGINES)})")
        if recognizers and engine != "presidio":
            raise ValueError("recognizers need engine='presidio'")
        self.engine = engine
        self.recognizers = recognizers
        self.mode = mode
        self.modes = dict(modes or {})
        self.entities = list(entities) if entities else None
        self.ner_model = ner_model
        self.audit_dir = audit_dir
        self.key_file = os.path.abspath(key_file) if key_file else None
        self.key_env = key_env
        selection = FieldSelection.parse(fields, skip_fields)
        self.fields = list(selection.fields) if selection.fields is not None else None
        self.skip_fields = list(selection.skip)
        Replacer(self.modes, self.mode)  # validate the modes now, not in a worker
        self._scanner: PiiScanner | None = None

    def scanner(self) -> Any:
        """The scanner, built once per worker process for this configuration and shared by the
        tasks it runs (``nordpipe.process_cache``; its only mutable state is memo caches)."""
        if self._scanner is None:
            key = ("pii.scanner", self.engine, tuple(self.entities) if self.entities else None,
                   file_identity(self.recognizers) if self.recognizers else None,
                   file_identity(self.ner_model) if self.ner_model else None)
            self._scanner = shared(key, self._build_scanner)
        return self._scanner

    def _build_scanner(self) -> Any:
        name_finder = None
        if self.ner_model:
            from nordpipe.pii.names import load_ner_model

            name_finder = load_ner_model(self.ner_model)
        if self.engine == "presidio":
            from nordpipe.pii.presidio import PresidioScanner

            return PresidioScanner(self.entities, self.recognizers, name_finder)
        return PiiScanner(self.entities, name_finder=name_finder)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_scanner"] = None  # rebuilt in the worker
        return state

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        scanner = self.scanner()
        key = read_key(self.key_file, self.key_env)  # in the task: never stored on the step
        # ids with personal data need a keyed hash even without a key: a random one, per task,
        # never written (the new ids are unique, not reproducible across runs)
        id_key = key or secrets.token_bytes(32)
        replacer = Replacer(self.modes, self.mode, key=key)
        selection = FieldSelection(tuple(self.fields) if self.fields is not None else None, tuple(self.skip_fields))
        audit = None
        if self.audit_dir:
            tmp_dir = private_dir(os.path.join(private_dir(self.audit_dir), ".tmp"))
            audit_tmp = os.path.join(tmp_dir, f"{rank:05d}.jsonl")
            audit = open_private(audit_tmp, "wb")
        try:
            stems: dict[str, str] = {}
            for doc in data:
                stem = doc.metadata.get(INPUT_KEY)
                if isinstance(stem, str):  # output files are named after input files
                    doc.metadata[INPUT_KEY] = stems.get(stem) or stems.setdefault(
                        stem, self._redact_stem(stem, scanner, id_key))
                quarantine = doc.metadata.get(QUARANTINE_KEY)
                if quarantine is not None:
                    with self.track_time():
                        self._redact_quarantine(quarantine, scanner, replacer, id_key)
                    yield doc
                    continue
                active = is_active(doc)
                with self.track_time():
                    self._redact_document(doc, active, scanner, replacer, selection, key, id_key, audit)
                    if active and not doc.text.strip():
                        mark_removed(doc, f"{self.name}:empty")
                yield doc
        finally:
            if audit is not None:
                audit.close()
        if audit is not None:
            os.replace(audit_tmp, os.path.join(self.audit_dir, f"{rank:05d}.jsonl"))

    def _redact_document(self, doc: Document, active: bool, scanner: Any, replacer: Replacer,
                         selection: FieldSelection, key: bytes | None, id_key: bytes, audit: Any) -> None:
        text = doc.text
        language = (doc.metadata.get(NORDPIPE_KEY) or {}).get("language") or doc.metadata.get("language")
        language = language if isinstance(language, str) else None
        old_id = str(doc.id)

        def scan(value: str) -> list[Any]:
            return scanner.scan(value, language)

        def scan_field(value: str) -> list[Any]:
            return scanner.scan(value, language) if not prefilter or may_hold_pii(value) else []

        def replace(value: str, spans: list[Any]) -> tuple[str, list[str]]:
            return replacer.replace(value, spans, old_id, language)

        prefilter = self.engine == "fast"
        redactor = FieldRedactor(selection, scan_field, replace, lambda value: ID_PREFIX + keyed_hex(id_key, "id", value))
        found: list[Found] = []
        new_id = redactor.redact_id(old_id, found) if selection.ids else old_id
        redactor.redact_metadata(doc.metadata, found)
        spans = scan(text)
        counts = Counter(span.entity for span in spans)
        counts.update(f.span.entity for f in found)
        if active:
            nordpipe_meta(doc)["pii"] = dict(counts)
            self.stat_update("documents")
        written: list[str] = []
        if spans:
            doc.text, written = replace(text, spans)
        doc.id = new_id
        if not counts:
            return
        if active:
            self.stat_update("documents_with_pii")
            for entity, count in counts.items():
                self.stat_update(entity, value=count)
            if found:
                self.stat_update("fields_with_pii", value=len({f.field for f in found}))
        if audit is None:
            return
        source = doc.metadata.get("source")
        if new_id != old_id:
            audit.write(orjson.dumps({"id": new_id, "field": "id", "original_id": old_id, "source": source}) + b"\n")
        for span, new in zip(spans, written, strict=True):
            audit.write(orjson.dumps(_audit_entry(new_id, source, "text", span, new, key, text[span.start : span.end]))
                        + b"\n")
        for item in found:
            if item.field == "id":
                continue
            audit.write(orjson.dumps(_audit_entry(new_id, source, item.field, item.span, item.replacement, key,
                                                  item.original)) + b"\n")

    def _redact_stem(self, stem: str, scanner: Any, id_key: bytes) -> str:
        """The output file stem of an input file: ``pii-<16 hex>`` when the input's name holds
        personal data (stems come from raw file names and are in every later file name, the
        token manifest and the provenance), else unchanged. Folder prefixes (``nyheder__``) stay."""
        prefix, sep, name = stem.rpartition("__")
        if not scan_glued(lambda v: scanner.scan(v, None), name):
            return stem
        self.stat_update("file_names_with_pii")
        return f"{prefix}{sep}{ID_PREFIX}{keyed_hex(id_key, 'file', name, 16)}"

    def _redact_quarantine(self, record: dict[str, Any], scanner: Any, replacer: Replacer, id_key: bytes) -> None:
        """Redact a quarantine record in place: its raw line, file name and reason."""

        def scan(value: str) -> list[Any]:
            return scanner.scan(value, None)

        def replace(value: str, spans: list[Any]) -> tuple[str, list[str]]:
            return replacer.replace(value, spans, "quarantine", None)

        redactor = FieldRedactor(FieldSelection(), scan, replace, lambda value: ID_PREFIX + keyed_hex(id_key, "id", value))
        found: list[Found] = []

        def redact_text(value: str) -> str:
            # URLs first (their pieces percent-decoded), then the whole line as an id-like string
            value = _URL_IN_TEXT.sub(lambda m: redactor.redact_string("url", m.group(0), found), value)
            spans = scan_glued(scan, value)
            return replace(value, spans)[0] if spans else value

        if "raw_base64" in record:
            raw = base64.b64decode(record.pop("raw_base64")).decode("utf-8", "replace")
            record["raw"] = redact_text(raw)
            record["raw_lossy"] = True
        elif isinstance(record.get("raw"), str):
            record["raw"] = redact_text(record["raw"])
        if isinstance(record.get("file"), str):
            record["file"] = redactor.redact_string("path", record["file"], found)
        if isinstance(record.get("reason"), str):
            record["reason"] = redact_text(record["reason"])
        if found or record.get("raw"):
            self.stat_update("quarantine_records_redacted")


def _audit_entry(doc_id: str, source: Any, field: str, span: Any, replacement: str, key: bytes | None,
                 original: str) -> dict[str, Any]:
    entry = {"id": doc_id, "source": source, "field": field, "start": span.start, "end": span.end,
             "entity": span.entity, "recognizer": span.recognizer, "score": span.score, "replacement": replacement}
    if key:
        entry["hash"] = hash_original(key, span.entity, original)
    return entry


# --------------------------------------------------------------------------------------------
# The stage

def merge_audit(audit_dir: str, target: str) -> int:
    """Concatenate the per-task audit files into ``target`` (jsonl, .gz/.zst by suffix),
    atomically, mode 0600. Returns the number of lines."""
    from nordpipe.documents import open_binary

    parts = sorted(n for n in os.listdir(audit_dir) if n.endswith(".jsonl")) if os.path.isdir(audit_dir) else []
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700)  # a folder made for the audit is private; an existing one is left as it is
    tmp = os.path.join(folder, f".{os.path.basename(target)}.tmp")
    suffix = target[len(target.rstrip(".gzst")) :] if target.endswith((".gz", ".zst")) else ""
    open_private(tmp + suffix, "wb").close()  # created 0600 before the (de)compressing writer opens it
    lines = 0
    with open_binary(tmp + suffix, "wb") as out:
        for name in parts:
            with open(os.path.join(audit_dir, name), "rb") as handle:
                for line in handle:
                    out.write(line)
                    lines += 1
    os.replace(tmp + suffix, target)
    return lines


def run_pii(
    input_path: str,
    output_path: str,
    options: Any = None,
    mode: str = "tag",
    modes: dict[str, str] | None = None,
    entities: list[str] | None = None,
    ner_model: str | None = None,
    audit: str | None = None,
    key_file: str | None = None,
    key_env: str | None = None,
    engine: str = "fast",
    recognizers: str | None = None,
    fields: list[str] | None = None,
    skip_fields: list[str] | None = None,
) -> dict[str, Any]:
    """Run the PII stage from INPUT to OUTPUT; returns the stats (``extra`` holds counts per
    entity type). ``audit``: file that receives every span (keyed hashes, never originals;
    the old id of a replaced id). ``key_file``/``key_env``: the secret key (``keys``; checked
    here, ``keys.KeyProblem``, a ``ValueError``). ``fields``/``skip_fields``: the metadata
    scanned (``fields.FieldSelection``). ``engine``/``recognizers``: see ``PiiReplace``; the
    recognizer file is checked here, before any task starts (``presidio.RecognizerFileError``,
    a ``ValueError``)."""
    from nordpipe.pii.recognizers import ALL_ENTITIES
    from nordpipe.runner import RunOptions, StageRun

    options = options or RunOptions()
    if entities:
        unknown = set(entities) - set(ALL_ENTITIES)
        if unknown:
            raise ValueError(f"unknown entity types: {', '.join(sorted(unknown))} (known: {', '.join(ALL_ENTITIES)})")
    if ner_model and ner_model != "tagger" and not os.path.isdir(ner_model) and not (
            ner_model.endswith(".json.gz") and os.path.isfile(ner_model)):
        raise FileNotFoundError(f"--ner-model {ner_model}: no such directory")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (use {' or '.join(ENGINES)})")
    if recognizers and engine != "presidio":
        raise ValueError("--recognizers needs --engine presidio")
    own_entities: list[str] = []
    if recognizers:
        from nordpipe.pii.presidio import user_entities

        own_entities = user_entities(recognizers)
    fingerprint = key_id(read_key(key_file, key_env))  # refuses a group/world-readable file before anything runs
    selection = FieldSelection.parse(fields, skip_fields)
    layout = OutputLayout.of(output_path)

    def parameters() -> dict[str, Any]:
        return {
            "mode": mode, "modes": dict(sorted((modes or {}).items())), "entities": sorted(entities) if entities else None,
            "ner_model": os.path.abspath(ner_model) if ner_model else None, "audit": bool(audit),
            "engine": engine, "recognizers": os.path.abspath(recognizers) if recognizers else None,
            "key_id": fingerprint, **selection.as_params(),
        }

    audit_dir = layout.state_path("pii", "audit")
    with StageRun("pii", input_path, output_path, options, parameters) as run:
        if audit:
            private_dir(os.path.dirname(audit_dir))
        step = PiiReplace(mode=mode, modes=modes, entities=entities, ner_model=ner_model,
                          audit_dir=audit_dir if audit else None, key_file=key_file, key_env=key_env, engine=engine,
                          recognizers=os.path.abspath(recognizers) if recognizers else None,
                          fields=fields, skip_fields=skip_fields)
        run.execute([DocumentReader(input_path), step, run.writer()])
        if run.submitted_only:
            return run.submit()
        run.finishing()
        stats = run.merge_stats()
        counters = stats.get("steps", {}).get(PiiReplace.name, {})
        extra = {f"pii {entity}": int(counters[entity]) for entity in [*ALL_ENTITIES, *own_entities]
                 if counters.get(entity)}
        extra["pii documents with personal data"] = int(counters.get("documents_with_pii", 0))
        if counters.get("fields_with_pii"):
            extra["pii metadata fields and ids with personal data"] = int(counters["fields_with_pii"])
        if audit:
            extra["pii audit spans"] = merge_audit(audit_dir, audit)
            # the parts hold the old ids too: once merged they go, so OUTPUT (which gets
            # published) holds no mapping; the parts stay only while a run can still resume
            shutil.rmtree(audit_dir, ignore_errors=True)
        stats["extra"] = {**(stats.get("extra") or {}), **extra}
        return run.complete(stats)
