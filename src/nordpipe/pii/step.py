"""The datatrove step of the PII stage: find personal data and replace it in place."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import Counter
from typing import Any

import orjson
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from nordpipe.documents import NORDPIPE_KEY, mark_removed, nordpipe_meta
from nordpipe.layout import OutputLayout
from nordpipe.pii import ENGINES
from nordpipe.pii.engine import PiiScanner
from nordpipe.pii.replace import Replacer, _normalise
from nordpipe.steps import DocumentReader, is_active


def hash_original(salt: str, entity: str, value: str) -> str:
    """Salted hash of an original value for the audit (HMAC-SHA256, 32 hex digits): equal
    values hash equal within a run with the same salt; the value cannot be read back."""
    return hmac.new(salt.encode(), f"{entity}\x00{_normalise(entity, value)}".encode(), hashlib.sha256).hexdigest()[:32]


class PiiReplace(PipelineStep):
    """Replace personal data in documents' text by tags or fake values.

    Args:
        mode: ``tag`` (default; ``<CPR>``, ``<NAME>``...) or ``fake`` (same-format fictional
            values, consistent within a document).
        modes: per-entity overrides, e.g. ``{"NAME": "tag"}``.
        entities: entity types to find (default: all, see ``recognizers.ALL_ENTITIES``).
        ner_model: a local spaCy pipeline or Hugging Face token-classification model
            directory used for names instead of the built-in method (default None).
        audit_dir: write one ``<rank>.jsonl`` per task with every span (document id, offsets
            in the original text, type, recognizer, replacement, salted hash of the original;
            never the original) (default None: no audit).
        salt: secret mixed into audit hashes and fake-value seeds (default "").
        engine: ``fast`` (default; ``PiiScanner``) or ``presidio`` (the same recognizers in
            presidio's offline AnalyzerEngine, ``pii.presidio.PresidioScanner``; same output).
        recognizers: with ``engine="presidio"``, a presidio recognizer YAML whose entity types
            are replaced by ``<ENTITY>`` tags too.

    Counts per entity type go to the step's stats and to ``metadata["nordpipe"]["pii"]``.
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
        salt: str = "",
        engine: str = "fast",
        recognizers: str | None = None,
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
        self.salt = salt
        Replacer(self.modes, self.mode, salt)  # validate the modes now, not in a worker
        self._scanner: PiiScanner | None = None

    def scanner(self) -> Any:
        if self._scanner is None:
            name_finder = None
            if self.ner_model:
                from nordpipe.pii.names import load_ner_model

                name_finder = load_ner_model(self.ner_model)
            if self.engine == "presidio":
                from nordpipe.pii.presidio import PresidioScanner

                self._scanner = PresidioScanner(self.entities, self.recognizers, name_finder)
            else:
                self._scanner = PiiScanner(self.entities, name_finder=name_finder)
        return self._scanner

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_scanner"] = None  # rebuilt in the worker
        return state

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        scanner = self.scanner()
        replacer = Replacer(self.modes, self.mode, self.salt)
        audit = None
        if self.audit_dir:
            os.makedirs(os.path.join(self.audit_dir, ".tmp"), exist_ok=True)
            audit_tmp = os.path.join(self.audit_dir, ".tmp", f"{rank:05d}.jsonl")
            audit = open(audit_tmp, "wb")
        try:
            for doc in data:
                if not is_active(doc):
                    yield doc
                    continue
                with self.track_time():
                    text = doc.text
                    language = (doc.metadata.get(NORDPIPE_KEY) or {}).get("language") or doc.metadata.get("language")
                    spans = scanner.scan(text, language if isinstance(language, str) else None)
                    counts = Counter(span.entity for span in spans)
                    nordpipe_meta(doc)["pii"] = dict(counts)
                    self.stat_update("documents")
                    if spans:
                        doc.text, written = replacer.replace(text, spans, str(doc.id),
                                                             language if isinstance(language, str) else None)
                        self.stat_update("documents_with_pii")
                        for entity, count in counts.items():
                            self.stat_update(entity, value=count)
                        if audit is not None:
                            for span, new in zip(spans, written, strict=True):
                                audit.write(orjson.dumps({
                                    "id": doc.id, "source": doc.metadata.get("source"), "start": span.start,
                                    "end": span.end, "entity": span.entity, "recognizer": span.recognizer,
                                    "score": span.score, "replacement": new,
                                    "hash": hash_original(self.salt, span.entity, text[span.start : span.end]),
                                }) + b"\n")
                    if not doc.text.strip():
                        mark_removed(doc, f"{self.name}:empty")
                yield doc
        finally:
            if audit is not None:
                audit.close()
        if audit is not None:
            os.replace(audit_tmp, os.path.join(self.audit_dir, f"{rank:05d}.jsonl"))


# --------------------------------------------------------------------------------------------
# The stage

SALT_ENV = "NORDPIPE_PII_SALT"


def _salt_for(output_path: str, salt: str | None) -> str:
    """The secret for audit hashes and fake seeds: given, from $NORDPIPE_PII_SALT, or a random
    one kept in ``OUTPUT/.nordpipe/pii/salt`` (so a resumed run hashes and fakes alike)."""
    if salt:
        return salt
    if os.environ.get(SALT_ENV):
        return os.environ[SALT_ENV]
    path = OutputLayout.of(output_path).state_path("pii", "salt")
    if os.path.exists(path):
        with open(path) as handle:
            return handle.read().strip()
    import secrets

    value = secrets.token_hex(16)
    _keep_salt(path, value)
    return value


def _keep_salt(path: str, value: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    os.replace(path + ".tmp", path)


def merge_audit(audit_dir: str, target: str) -> int:
    """Concatenate the per-task audit files into ``target`` (jsonl, .gz/.zst by suffix),
    atomically. Returns the number of spans."""
    from nordpipe.documents import open_binary

    parts = sorted(n for n in os.listdir(audit_dir) if n.endswith(".jsonl")) if os.path.isdir(audit_dir) else []
    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(target)}.tmp")
    suffix = target[len(target.rstrip(".gzst")) :] if target.endswith((".gz", ".zst")) else ""
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
    salt: str | None = None,
    engine: str = "fast",
    recognizers: str | None = None,
) -> dict[str, Any]:
    """Run the PII stage from INPUT to OUTPUT; returns the stats (``extra`` holds counts per
    entity type). ``audit``: file that receives every span (hashes, never originals).
    ``engine``/``recognizers``: see ``PiiReplace``; the recognizer file is checked here, before
    any task starts (``presidio.RecognizerFileError``, a ``ValueError``)."""
    from nordpipe.pii.recognizers import ALL_ENTITIES
    from nordpipe.runner import RunOptions, StageRun

    options = options or RunOptions()
    if entities:
        unknown = set(entities) - set(ALL_ENTITIES)
        if unknown:
            raise ValueError(f"unknown entity types: {', '.join(sorted(unknown))} (known: {', '.join(ALL_ENTITIES)})")
    if ner_model and not os.path.isdir(ner_model):
        raise FileNotFoundError(f"--ner-model {ner_model}: no such directory")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (use {' or '.join(ENGINES)})")
    if recognizers and engine != "presidio":
        raise ValueError("--recognizers needs --engine presidio")
    own_entities: list[str] = []
    if recognizers:
        from nordpipe.pii.presidio import user_entities

        own_entities = user_entities(recognizers)
    layout = OutputLayout.of(output_path)
    secrets_of_run: dict[str, str] = {}

    def parameters() -> dict[str, Any]:
        # under the output's lock, after the input and OUTPUT were checked: nothing is written
        # into a wrong OUTPUT, and the salt kept there is the one this run records
        secret = secrets_of_run["salt"] = _salt_for(layout.root, salt)
        return {
            "mode": mode, "modes": dict(sorted((modes or {}).items())), "entities": sorted(entities) if entities else None,
            "ner_model": os.path.abspath(ner_model) if ner_model else None, "audit": bool(audit),
            "engine": engine, "recognizers": os.path.abspath(recognizers) if recognizers else None,
            "salt_id": hashlib.sha256(secret.encode()).hexdigest()[:12],
        }

    audit_dir = layout.state_path("pii", "audit")
    with StageRun("pii", input_path, output_path, options, parameters) as run:
        secret = secrets_of_run["salt"]
        if not salt and not os.environ.get(SALT_ENV):
            _keep_salt(layout.state_path("pii", "salt"), secret)  # --force wiped the state
        step = PiiReplace(mode=mode, modes=modes, entities=entities, ner_model=ner_model,
                          audit_dir=audit_dir if audit else None, salt=secret, engine=engine,
                          recognizers=os.path.abspath(recognizers) if recognizers else None)
        run.execute([DocumentReader(input_path), step, run.writer()])
        if run.submitted_only:
            return run.submit()
        run.finishing()
        stats = run.merge_stats()
        counters = stats.get("steps", {}).get(PiiReplace.name, {})
        extra = {f"pii {entity}": int(counters[entity]) for entity in [*ALL_ENTITIES, *own_entities]
                 if counters.get(entity)}
        extra["pii documents with personal data"] = int(counters.get("documents_with_pii", 0))
        if audit:
            extra["pii audit spans"] = merge_audit(audit_dir, audit)
        stats["extra"] = {**(stats.get("extra") or {}), **extra}
        return run.complete(stats)
