"""Downstream dataset exports: unique sentences (masked-LM sets) and (anchor, positive) pairs.

Two exports read a cleaned corpus of standardized documents and write Hugging Face-style
datasets:

``SentenceExport`` (``nordpipe export sentences``)
    Splits every document into sentences (``SentenceSplitter``, rule-based with Nordic
    abbreviation lists), drops sentences outside ``[min_chars, max_chars]``, keeps the first
    occurrence of every distinct sentence (exact, after whitespace and Unicode NFC
    normalization) and assigns each to ``train`` or ``validation``::

        OUTPUT/data/train-00000-of-00001.parquet        text, document_id, source,
        OUTPUT/data/validation-00000-of-00001.parquet   sentence_index, occurrences
        OUTPUT/jsonl/...                                 the same rows as jsonl (``formats``)

``PairExport`` (``nordpipe export pairs``)
    Builds one (anchor, positive) row per document from two fields (e.g. title and body, HTML
    stripped with lxml's parser), assigns whole groups of documents (e.g. all pages under one
    URL path) to ``train`` or ``test``, and writes the query/corpus/relevance files that
    sentence-transformers' ``InformationRetrievalEvaluator(queries, corpus, relevant_docs)``
    takes (``load_ir_evaluation`` returns exactly those three dicts)::

        OUTPUT/data/train-00000-of-00001.parquet   anchor, positive, document_id, group,
        OUTPUT/data/test-00000-of-00001.parquet    query_id, corpus_id
        OUTPUT/ir/queries.parquet                  id, text   (test anchors, one per distinct text)
        OUTPUT/ir/corpus.parquet                   id, text   (positives, one per distinct text)
        OUTPUT/ir/relevant_docs.parquet            query_id, corpus_id

Splits are hash-based: a row's split depends only on ``xxh3_64(key, seed)`` of its split key
(the sentence text, its document id, or the pair's group key), never on the rest of the corpus,
so reruns give the same split and adding documents never moves an existing row. The exception
is ``validation_count`` (an exact number of validation sentences: the ``count`` sentences with
the smallest hashes), where a grown corpus can push a former validation sentence into train.

Both exports rebuild OUTPUT from scratch on every run, in ``OUTPUT/.nordpipe/tmp/``, and move
each output folder into place only when everything is written; a rerun on the same input gives
byte-identical files. Unreadable input records are never fatal: they are counted by reason and
written to ``OUTPUT/quarantine/export.jsonl``.

Memory: sentence dedup does not hold the corpus in memory. Pass 1 streams documents and
spills kept sentences into ``partitions`` hash partitions (Arrow IPC files under
``OUTPUT/.nordpipe/tmp``); pass 2 deduplicates one partition at a time with polars. Peak memory
is about three times the largest partition: with the default 64 partitions, ~3 GiB per 64 GiB
of sentence text, so raise ``partitions`` for bigger corpora (disk needs ~1.5x the sentence
text). Pair export keeps a set of 128-bit hashes of the pairs seen (~100 bytes per pair: about
10 GiB per 100 million pairs) and the test split's queries and corpus in memory.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import xxhash

from nordpipe import languages
from nordpipe.documents import NORDPIPE_KEY, iter_document_lines, iter_records, raw_for_quarantine
from nordpipe.layout import OutputLayout
from nordpipe.steps import reason_category

FORMATS = ("parquet", "jsonl")
HASH_SPACE = 1 << 64

# --------------------------------------------------------------------------------------------
# Sentence splitting
#
# Abbreviations are listed without their final period, lower-cased. "Strong" abbreviations are
# practically never the last word of a sentence (f.eks., ca., nr., hr.): the text goes on after
# them even when the next word is capitalized (a name, a place). "Weak" ones often end a
# sentence (osv., mv., kr.) or are also ordinary words (min, man, tv): after them, a capitalized
# next word starts a new sentence.

_STRONG: dict[str, str] = {
    "da": (
        "f.eks fx bl.a dvs d.v.s ca nr kl jf jvf evt inkl ekskl pga p.g.a mht m.h.t vedr ang iflg hhv ift "
        "ifm vha stk pkt kap bd vol fig hr fr frk dr prof mag cand ph.d lic adm dir tlf tel sml gl st "
        "ndf ovf ff afd ekspl eks mht vs ml"
    ),
    "nb": (
        "f.eks bl.a dvs d.v.s ca nr kl jf jfr evt ev inkl ekskl pga p.g.a ifb iht ift mht m.h.t vha vedr "
        "ang iflg hhv tlf stk pkt kap bd vol fig hr fr frk dr prof adv dir sml st f.o.m t.o.m vs ca"
    ),
    "nn": (
        "t.d bl.a m.a dvs d.v.s ca nr kl jf evt ev inkl pga p.g.a ifb iht ift mht vha vedr ang hhv tlf "
        "stk pkt kap bd fig hr dr prof f.o.m t.o.m vs"
    ),
    "sv": (
        "t.ex tex bl.a s.k dvs d.v.s ca nr kl jfr p.g.a pga fr.o.m t.o.m f.d jfr resp ang enl ung inkl "
        "exkl f.ö f.n tel tfn kap dr prof doc mha m.h.a vs avd nuv pers fig bd sid vol"
    ),
    "is": "t.d þ.e þ.e.a.s m.a u.þ.b skv kl nr bls sbr þ.á.m dags hr frk sr t.a.m",
    "fo": "t.d t.e m.a nr kl sbr bls",
    "fi": "esim mm ns n ts vrt ks kts nro klo ao em ko ed puh prof tri ent k v s",
}
_WEAK: dict[str, str] = {
    "da": (
        "osv o.s.v mv m.v m.m mm etc o.l m.fl mfl kr pct mio mia min man tirs ons tors fre lør søn tv th "
        "tab el nb obs jan feb mar apr jun jul aug sep sept okt nov dec"
    ),
    "nb": (
        "osv o.s.v mv m.v m.m etc o.l m.fl kr pst mill mrd nb obs e.kr f.kr min man tv "
        "jan feb mar apr jun jul aug sep sept okt nov des"
    ),
    "nn": "osb o.a m.m o.l etc kr pst mill mrd nb e.kr f.kr jan feb mar apr jun jul aug sep okt nov des",
    "sv": (
        "osv o.s.v m.m mm m.fl etc o.d st kr e.kr f.kr min tis ons tors fre lör sön "
        "jan feb mar apr jun jul aug sep sept okt nov dec"
    ),
    "is": "o.s.frv o.fl o.þ.h f.kr e.kr ath frh",
    "fo": "o.s.fr o.a o.l",
    "fi": "jne ym yms tms jms milj mrd ma ti ke to pe la su",
}
LANGUAGES = tuple(_STRONG)

_TERMINATORS = ".!?…"
_CLOSERS = "\"'”’»«)]"
_OPENERS = "\"'“„”»«([{–—-•*‘’¿¡"
# A candidate boundary in whitespace-normalized text: a run of terminators, optional closing
# quotes/brackets, a space.
_CANDIDATE = re.compile(rf"(?P<term>[{_TERMINATORS}]+)(?P<close>[{re.escape(_CLOSERS)}]*)(?P<space> )")
_INITIALS = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")  # H.C / J.R.R (before a name)
_PARAGRAPHS = re.compile(r"\n[ \t\r\f\v]*\n")
_LINE_END_NO_WRAP = tuple(_TERMINATORS + ":;" + _CLOSERS)
_LIST_ITEM = re.compile(r"(?:[-•*–—]|\d{1,3}[.)])\s")  # a line starting a list item is never a hard wrap


def normalize_language(language: object) -> str | None:
    """``"dan_Latn"``/``"da-DK"``/``"nob"`` -> ``"da"``/``"da"``/``"nb"``; None if not a Nordic language."""
    code = languages.normalize_language(language)  # aliases as everywhere ("no" -> nb's list)
    return code if code in _STRONG else None


def normalize_sentence(text: str) -> str:
    """NFC, and every run of whitespace as one space: the form sentences are deduplicated in."""
    return " ".join(unicodedata.normalize("NFC", text).split())


class SentenceSplitter:
    """Rule-based sentence splitter for Danish, Norwegian (bokmål, nynorsk), Swedish, Icelandic,
    Faroese and Finnish.

    Rules, in order, for a terminator (``. ! ? …``) followed by whitespace:

    - a blank line always ends a sentence; a single line break does too, unless it looks like a
      hard wrap (the line ends without punctuation and the next starts in lower case, and is
      not a list item such as ``- æbler``);
    - never before a lower-case word (``den 3. maj``, ``pga. vejret``, ``Hvad? sagde hun``);
    - ``!``, ``?``, ``…`` and ``...`` end the sentence otherwise;
    - a period after a *strong* abbreviation (``f.eks.``, ``ca.``, ``nr.``, ``hr.``), a single
      letter (``H. C. Andersen``, ``s. 45``) or dotted initials (``H.C. Andersen``) does not;
    - a period after a *weak* abbreviation (``osv.``, ``kr.``, ``min.``) ends the sentence only
      before an upper-case letter;
    - any other period ends the sentence.

    Args:
        language: ISO code (``da``, ``nb``, ``nn``, ``no``, ``sv``, ``is``, ``fo``, ``fi``, or
            3-letter/``_Latn`` forms) choosing the abbreviation list; None (default) uses all
            lists (an abbreviation weak in any language counts as weak).
        extra_abbreviations: more strong abbreviations (without the final period).
    """

    def __init__(self, language: str | None = None, extra_abbreviations: tuple[str, ...] = ()):
        code = normalize_language(language)
        languages = [code] if code else list(LANGUAGES)
        self.language = code
        weak: set[str] = set()
        strong: set[str] = set()
        for lang in languages:
            weak.update(_WEAK[lang].split())
            strong.update(_STRONG[lang].split())
        strong.update(a.lower().rstrip(".") for a in extra_abbreviations)
        self.weak = frozenset(weak)
        self.strong = frozenset(strong - weak)

    # -- public API

    def split(self, text: str) -> list[str]:
        """The sentences of ``text``, whitespace-normalized, in order."""
        sentences: list[str] = []
        for paragraph in self.paragraphs(text):
            sentences.extend(self.split_paragraph(paragraph))
        return sentences

    def paragraphs(self, text: str) -> Iterator[str]:
        """Blocks of text that no sentence crosses: lines, with hard-wrapped lines rejoined."""
        for block in _PARAGRAPHS.split(text):
            current: list[str] = []
            for raw_line in block.split("\n"):
                line = raw_line.strip()
                if not line:
                    continue
                if current and (
                    current[-1].endswith(_LINE_END_NO_WRAP) or not _starts_lower(line) or _LIST_ITEM.match(line)
                ):
                    yield " ".join(current)
                    current = []
                current.append(line)
            if current:
                yield " ".join(current)

    def split_paragraph(self, paragraph: str) -> list[str]:
        # Normalize first (NFC, single spaces): boundaries are then found on the final text and
        # the token before a terminator is everything back to the previous space.
        paragraph = normalize_sentence(paragraph)
        sentences = []
        start = 0
        for match in _CANDIDATE.finditer(paragraph):
            if self._is_boundary(match, paragraph):
                sentences.append(paragraph[start : match.start("space")])
                start = match.end()
        if start < len(paragraph):
            sentences.append(paragraph[start:])
        return sentences

    # -- rules

    def _is_boundary(self, match: re.Match[str], paragraph: str) -> bool:
        end = match.end()
        following: str | None = paragraph[end] if end < len(paragraph) else None
        if following is not None and not following.isalnum():
            following = _first_word_char(paragraph, end)
        if following is not None and following.islower():
            return False
        if match[1] != ".":
            return True  # ! ? … ...
        if match[2]:
            return True  # »Kom.« Han gik.
        term_start = match.start()
        token = paragraph[paragraph.rfind(" ", 0, term_start) + 1 : term_start].lstrip(_OPENERS)
        word = token.lower()
        if word in self.strong:
            return False
        if word in self.weak:
            return following is not None and following.isupper()
        if len(token) == 1 and token.isalpha():
            return False  # an initial (H. C. Andersen) or a one-letter abbreviation (s. 45)
        # Dotted initials before a name (H.C. Andersen) do not end the sentence.
        is_initials = token.isupper() and _INITIALS.fullmatch(token) is not None
        return not (is_initials and following is not None and following.isupper())


def _starts_lower(line: str) -> bool:
    char = _first_word_char(line, 0)
    return char is not None and char.islower()


def _first_word_char(text: str, start: int) -> str | None:
    """The first letter or digit at or after ``start`` (skipping opening quotes and dashes)."""
    for char in text[start : start + 16]:
        if char.isalnum():
            return char
        if not (char.isspace() or char in _OPENERS):
            return None
    return None


_SPLITTERS: dict[str | None, SentenceSplitter] = {}


def split_sentences(text: str, language: str | None = None) -> list[str]:
    """Split ``text`` with a cached ``SentenceSplitter(language)``."""
    return _cached_splitter(language).split(text)


# --------------------------------------------------------------------------------------------
# HTML

_MARKUP = re.compile(r"<[A-Za-z!/?]|&(?:#\d+|#x[0-9A-Fa-f]+|[A-Za-z]+);")
_DROP_TAGS = frozenset({"script", "style", "noscript", "template", "head", "iframe", "object", "svg", "button"})
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "dd", "details", "div", "dl", "dt", "fieldset", "figcaption",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol",
    "p", "pre", "section", "summary", "table", "td", "th", "tr", "ul", "caption", "body", "html", "title",
})


@lru_cache(maxsize=1)
def _placeholder_pattern() -> re.Pattern[str]:
    """``<NAME>``, ``<CPR>``, ... exactly as ``nordpipe pii`` writes them (``pii.replace.tag_for``)."""
    from nordpipe.pii.recognizers import ALL_ENTITIES
    from nordpipe.pii.replace import tag_for

    return re.compile("|".join(re.escape(tag_for(entity)) for entity in ALL_ENTITIES))


def html_to_text(value: str) -> str:
    """Visible text of an HTML fragment or page, parsed with lxml; block elements become line
    breaks, entities are decoded, scripts/styles/comments dropped. Plain text (nothing that looks
    like a tag or an entity) is returned unchanged, without a parse. The PII stage's placeholder
    tags (``<NAME>``, ``<EMAIL>``, ...) are text, not markup, and are kept: a parser would take
    ``<NAME>`` for an unknown element and drop it, so they are escaped as ``&lt;NAME&gt;``
    first, which the parser decodes back to the tag's text."""
    placeholders = _placeholder_pattern()
    if not _MARKUP.search(placeholders.sub("", value)):
        return value
    return _markup_to_text(placeholders.sub(lambda m: "&lt;" + m.group(0)[1:-1] + "&gt;", value))


def _markup_to_text(value: str) -> str:
    import lxml.etree
    import lxml.html

    try:
        root = lxml.html.fragment_fromstring(value, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        try:
            root = lxml.html.document_fromstring(value)
        except (lxml.etree.ParserError, ValueError):
            return value
    for element in list(root.iter()):
        tag = element.tag if isinstance(element.tag, str) else ""
        if not tag:  # comments and processing instructions
            continue
        tag = tag.lower()
        if tag in _DROP_TAGS:
            element.drop_tree()
        elif tag == "br":
            element.tail = "\n" + (element.tail or "")
        elif tag in _BLOCK_TAGS:
            element.text = "\n" + (element.text or "")
            element.tail = "\n" + (element.tail or "")
        elif tag in ("td", "th"):
            element.tail = " " + (element.tail or "")
    return root.text_content()


def clean_field_text(value: str, *, single_line: bool) -> str:
    """HTML stripped; whitespace collapsed within lines; empty lines dropped; NFC.

    ``single_line`` joins the lines with spaces (for anchors such as titles and queries)."""
    text = unicodedata.normalize("NFC", html_to_text(value).replace("\xa0", " "))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    return (" " if single_line else "\n").join(lines)


# --------------------------------------------------------------------------------------------
# Reading documents, quarantine, atomic output


@dataclass
class _Quarantine:
    """Input records an export could not use: counted by reason and kept for the user."""

    counts: Counter[str] = field(default_factory=Counter)
    lines: list[tuple[str, int, bytes]] = field(default_factory=list)

    def add(self, file: str, line: int, reason: str, raw: Any = None) -> None:
        self.counts[reason_category(reason)] += 1
        entry = {"file": file, "line": line, "reason": reason, **raw_for_quarantine(raw)}
        self.lines.append((file, line, orjson.dumps(entry) + b"\n"))

    def merge(self, other: _Quarantine) -> None:
        self.counts.update(other.counts)
        self.lines.extend(other.lines)


def iter_documents(path: str, quarantine: _Quarantine) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, record)`` for usable records of one file; unusable ones go to ``quarantine``.

    Usable: a JSON object with a non-empty string ``id`` and a string ``text``, not marked
    removed by an earlier stage. (Exports do not re-check dates: that is ``nordpipe validate``.)
    """
    if path.endswith(".parquet"):
        try:
            rows: Iterator[tuple[int, Any, str | None, Any]] = (
                (line, record, None, None) for line, record in iter_records(path)
            )
            rows = iter(list(rows))
        except Exception as err:  # a corrupt parquet file: the whole file is unusable
            quarantine.add(path, 0, f"unreadable parquet: {err}")
            return
    else:
        rows = ((item.line, item.record, item.error, item.raw) for item in iter_document_lines(path))
    for line, record, error, raw in rows:
        if error is None:
            error = _record_problem(record)
            if error is not None:
                raw = orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS, default=str)
        if error is not None:
            quarantine.add(path, line, error, raw)
            continue
        yield line, record


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"not an object: a JSON {type(record).__name__}"
    if not isinstance(record.get("id"), str) or not record["id"]:
        return "missing field: id (a non-empty string)"
    if not isinstance(record.get("text"), str):
        return "missing field: text (a string)"
    metadata = record.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return "bad metadata: not an object"
    meta = (metadata or {}).get(NORDPIPE_KEY)
    if isinstance(meta, dict) and meta.get("removed"):
        return f"removed upstream: {meta['removed']}"
    return None


class _SplitWriter:
    """Rows of one split written as fixed-size shards ``<split>-NNNNN-of-MMMMM.<ext>`` in every
    requested format (parquet under ``data/``, jsonl under ``jsonl/``)."""

    def __init__(self, root: str, split: str, rows_per_shard: int, formats: tuple[str, ...]):
        self.root, self.split, self.rows_per_shard, self.formats = root, split, rows_per_shard, formats
        self.pending: list[pl.DataFrame] = []
        self.pending_rows = 0
        self.shards: list[dict[str, str]] = []
        self.rows = 0

    def add(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        self.pending.append(frame)
        self.pending_rows += frame.height
        while self.pending_rows >= self.rows_per_shard:
            combined = pl.concat(self.pending, rechunk=False)
            self._write(combined.head(self.rows_per_shard))
            rest = combined.slice(self.rows_per_shard)
            self.pending = [rest] if rest.height else []
            self.pending_rows = rest.height

    def close(self) -> int:
        """Write the last shard and name the shards; an empty split writes no file (the
        ``datasets`` loader rejects empty splits)."""
        if self.pending_rows:
            self._write(pl.concat(self.pending, rechunk=False))
        self.pending = []
        total = len(self.shards)
        for index, paths in enumerate(self.shards):
            for fmt, path in paths.items():
                final = os.path.join(os.path.dirname(path), f"{self.split}-{index:05d}-of-{total:05d}.{fmt}")
                os.replace(path, final)
        return self.rows

    def _write(self, frame: pl.DataFrame) -> None:
        frame = frame.rechunk()
        paths = {}
        for fmt in self.formats:
            folder = os.path.join(self.root, "data" if fmt == "parquet" else "jsonl")
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f".{self.split}-{len(self.shards):05d}.{fmt}.part")
            if fmt == "parquet":
                # Statistics and a fixed compression level keep the file byte-identical on rerun.
                frame.write_parquet(path, compression="zstd", compression_level=3, statistics=True)
            else:
                frame.write_ndjson(path)
            paths[fmt] = path
        self.shards.append(paths)
        self.rows += frame.height


def _publish(tmp: str, output: str, folders: tuple[str, ...]) -> None:
    """Move each finished folder from ``tmp`` into ``output``, replacing the previous run's.

    Every folder appears complete or not at all (a rename); folders of an earlier run that this
    run did not produce (e.g. ``jsonl/`` after dropping that format) are removed."""
    old = OutputLayout.of(output).state_path("old")
    shutil.rmtree(old, ignore_errors=True)
    os.makedirs(old)
    for name in folders:
        target = os.path.join(output, name)
        if os.path.exists(target):
            os.replace(target, os.path.join(old, name))
        source = os.path.join(tmp, name)
        if os.path.exists(source):
            os.replace(source, target)
    shutil.rmtree(old, ignore_errors=True)


def _write_quarantine(tmp: str, quarantine: _Quarantine) -> None:
    if quarantine.lines:
        os.makedirs(os.path.join(tmp, "quarantine"), exist_ok=True)
        with open(os.path.join(tmp, "quarantine", "export.jsonl"), "wb") as handle:
            handle.writelines(entry for _file, _line, entry in sorted(quarantine.lines))


@contextlib.contextmanager
def _work_dir(output: str) -> Iterator[str]:
    """A fresh ``OUTPUT/.nordpipe/tmp``, removed afterwards whether the export succeeded or not
    (the previous run's published output is untouched until ``_publish``)."""
    tmp = OutputLayout.of(output).tmp()
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _split_threshold(ratio: float) -> int:
    """Rows whose 64-bit split hash is below this go to the held-out split."""
    return min(HASH_SPACE, int(ratio * HASH_SPACE))


# --------------------------------------------------------------------------------------------
# Sentence export

_SPILL_SCHEMA = pa.schema([
    ("text", pa.large_string()),
    ("split_hash", pa.uint64()),
    ("file_index", pa.uint32()),
    ("line", pa.uint32()),
    ("sentence_index", pa.uint32()),
    ("document_id", pa.large_string()),
    ("source", pa.large_string()),
])
_SPILL_FLUSH_ROWS = 100_000


@dataclass
class _SpillResult:
    documents_in: int = 0
    documents_with_sentences: int = 0
    characters_in: int = 0
    sentences_in: int = 0
    removed: Counter[str] = field(default_factory=Counter)
    quarantine: _Quarantine = field(default_factory=_Quarantine)


class SentenceExport:
    """Unique sentences with a train/validation split, for masked-LM training.

    Args:
        validation_ratio: share of sentences (or documents, see ``split_by``) that go to
            ``validation`` (default 0.01); assignment by hash, stable as the corpus grows.
        validation_count: instead of a ratio, exactly this many validation sentences: those
            with the smallest split hashes (exact, but a grown corpus may push some into train).
        split_by: ``sentence`` (default: each unique sentence by its own hash) or ``document``
            (all sentences first seen in one document go to the same split; ratio only).
        min_chars: shortest sentence kept, in characters after normalization (default 20).
        max_chars: longest sentence kept (default 1000; longer runs are mostly lists and
            boilerplate without punctuation).
        language: abbreviation list for every document (default None: each document's
            ``metadata.language`` when it is a Nordic language, else all lists).
        formats: any of ``parquet`` (``data/``) and ``jsonl`` (``jsonl/``); default parquet.
        rows_per_shard: rows per output file (default 1,000,000).
        partitions: hash partitions for out-of-memory dedup (default 64; see module doc).
        seed: seed of the split hash (default 0); another seed draws another validation set.
        workers: processes splitting sentences in pass 1 (default 1); output does not depend on it.
    """

    name = "export sentences"

    def __init__(
        self,
        validation_ratio: float | None = 0.01,
        validation_count: int | None = None,
        split_by: str = "sentence",
        min_chars: int = 20,
        max_chars: int = 1000,
        language: str | None = None,
        formats: tuple[str, ...] = ("parquet",),
        rows_per_shard: int = 1_000_000,
        partitions: int = 64,
        seed: int = 0,
        workers: int = 1,
    ):
        if validation_count is not None:
            if validation_count < 0:
                raise ValueError("validation_count must be >= 0")
            if split_by != "sentence":
                raise ValueError("validation_count needs split_by='sentence' (a count of whole documents is not exact)")
            validation_ratio = None
        elif validation_ratio is None or not 0 <= validation_ratio <= 1:
            raise ValueError("validation_ratio must be between 0 and 1")
        if split_by not in ("sentence", "document"):
            raise ValueError(f"split_by must be 'sentence' or 'document', not {split_by!r}")
        if language is not None and normalize_language(language) is None:
            raise ValueError(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            raise ValueError(f"formats must be among {', '.join(FORMATS)}")
        if min_chars < 1 or max_chars < min_chars:
            raise ValueError("need 1 <= min_chars <= max_chars")
        if rows_per_shard < 1 or partitions < 1 or workers < 1:
            raise ValueError("rows_per_shard, partitions and workers must be >= 1")
        self.validation_ratio = validation_ratio
        self.validation_count = validation_count
        self.split_by = split_by
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.language = language
        self.formats = tuple(f for f in FORMATS if f in formats)
        self.rows_per_shard = rows_per_shard
        self.partitions = partitions
        self.seed = seed
        self.workers = workers

    def parameters(self) -> dict[str, Any]:
        return {
            "validation_ratio": self.validation_ratio, "validation_count": self.validation_count,
            "split_by": self.split_by, "min_chars": self.min_chars, "max_chars": self.max_chars,
            "language": self.language, "formats": list(self.formats), "rows_per_shard": self.rows_per_shard,
            "partitions": self.partitions, "seed": self.seed,
        }

    # -- pass 1: split, filter, spill into hash partitions

    def _spill(self, files: list[str], indices: list[int], spill_dir: str) -> _SpillResult:
        result = _SpillResult()
        writers: dict[int, ipc.RecordBatchStreamWriter] = {}
        buffers: dict[int, list[tuple[Any, ...]]] = {}
        buffered = 0

        def flush() -> None:
            for part, rows in buffers.items():
                if not rows:
                    continue
                writer = writers.get(part)
                if writer is None:
                    sink = os.path.join(spill_dir, f"part-{part:05d}.arrow")
                    # lz4: spilled sentences are repetitive (boilerplate) and disk is the limit here.
                    options = ipc.IpcWriteOptions(compression="lz4")
                    writer = writers[part] = ipc.new_stream(sink, _SPILL_SCHEMA, options=options)
                columns = list(zip(*rows, strict=True))
                writer.write_batch(pa.record_batch(
                    [pa.array(col, type=f.type) for col, f in zip(columns, _SPILL_SCHEMA, strict=True)],
                    schema=_SPILL_SCHEMA,
                ))
                rows.clear()

        forced = SentenceSplitter(self.language) if self.language else None
        for file_index in indices:
            path = files[file_index]
            for line, record in iter_documents(path, result.quarantine):
                result.documents_in += 1
                text = record["text"]
                result.characters_in += len(text)
                metadata = record.get("metadata") or {}
                splitter = forced
                if splitter is None:
                    language = metadata.get("language") or (metadata.get(NORDPIPE_KEY) or {}).get("language")
                    splitter = _cached_splitter(language)
                doc_id = record["id"]
                source = record.get("source") if isinstance(record.get("source"), str) else None
                doc_hash = xxhash.xxh3_64_intdigest(doc_id.encode("utf-8"), seed=self.seed)
                kept = 0
                for index, sentence in enumerate(splitter.split(text)):
                    result.sentences_in += 1
                    length = len(sentence)
                    if length < self.min_chars:
                        result.removed["too_short"] += 1
                        continue
                    if length > self.max_chars:
                        result.removed["too_long"] += 1
                        continue
                    encoded = sentence.encode("utf-8")
                    part = xxhash.xxh3_64_intdigest(encoded) % self.partitions
                    split_hash = (
                        doc_hash if self.split_by == "document" else xxhash.xxh3_64_intdigest(encoded, seed=self.seed)
                    )
                    buffers.setdefault(part, []).append(
                        (sentence, split_hash, file_index, line, index, doc_id, source)
                    )
                    buffered += 1
                    kept += 1
                result.documents_with_sentences += kept > 0
                if buffered >= _SPILL_FLUSH_ROWS:
                    flush()
                    buffered = 0
        flush()
        for writer in writers.values():
            writer.close()
        return result

    # -- pass 2: dedup each partition

    def _dedup_partition(self, spill_root: str, tasks: int, part: int, dedup_dir: str) -> tuple[int, int, str | None]:
        files = [
            os.path.join(spill_root, f"task-{task:05d}", f"part-{part:05d}.arrow") for task in range(tasks)
        ]
        frames = [pl.read_ipc_stream(f) for f in files if os.path.exists(f)]
        if not frames:
            return 0, 0, None
        spilled = pl.concat(frames)
        rows = spilled.height
        unique = (
            spilled.sort(["file_index", "line", "sentence_index"])
            .group_by("text", maintain_order=True)
            .agg(pl.all().first(), pl.len().cast(pl.UInt32).alias("occurrences"))
        )
        path = os.path.join(dedup_dir, f"part-{part:05d}.arrow")
        unique.write_ipc(path)
        for f in files:
            if os.path.exists(f):
                os.remove(f)
        return rows, unique.height, path

    # -- the whole export

    def run(self, input_path: str, output_path: str) -> dict[str, Any]:
        """Export the sentences of every document under ``input_path`` to ``output_path``;
        returns the stats (also written to ``OUTPUT/.nordpipe/stats.json``)."""
        from nordpipe.runner import RunOptions, StageRun, pause_for_tests

        started = time.time()
        # Exports rebuild OUTPUT on every run, so other parameters need no --force: the earlier
        # export's folders are replaced when this one is done (and only those: StageRun refuses
        # any other OUTPUT).
        with StageRun(self.name, input_path, output_path, RunOptions(), self.parameters(), rebuilds=True) as run, \
                _work_dir(run.output_path) as tmp:
            files = run.files
            pause_for_tests("export")
            spill_root = os.path.join(tmp, "spill")
            tasks = max(1, min(self.workers, len(files)))
            plans = [list(range(task, len(files), tasks)) for task in range(tasks)]
            for task in range(tasks):
                os.makedirs(os.path.join(spill_root, f"task-{task:05d}"))
            if tasks == 1:
                results = [self._spill(files, plans[0], os.path.join(spill_root, "task-00000"))]
            else:
                with ProcessPoolExecutor(max_workers=tasks) as pool:
                    futures = [
                        pool.submit(self._spill, files, plans[t], os.path.join(spill_root, f"task-{t:05d}"))
                        for t in range(tasks)
                    ]
                    results = [f.result() for f in futures]
            spill = _SpillResult()
            for res in results:
                spill.documents_in += res.documents_in
                spill.documents_with_sentences += res.documents_with_sentences
                spill.characters_in += res.characters_in
                spill.sentences_in += res.sentences_in
                spill.removed.update(res.removed)
                spill.quarantine.merge(res.quarantine)

            dedup_dir = os.path.join(tmp, "dedup")
            os.makedirs(dedup_dir)
            deduped: list[str] = []
            spilled_rows = unique_rows = 0
            candidates: list[pl.DataFrame] = []
            for part in range(self.partitions):
                rows, unique, path = self._dedup_partition(spill_root, tasks, part, dedup_dir)
                spilled_rows += rows
                unique_rows += unique
                if path is None:
                    continue
                deduped.append(path)
                if self.validation_count:
                    candidates.append(
                        pl.read_ipc(path, columns=["split_hash", "text"]).sort(["split_hash", "text"])
                        .head(self.validation_count)
                    )
            shutil.rmtree(spill_root, ignore_errors=True)
            spill.removed["duplicate"] += spilled_rows - unique_rows

            is_validation = self._validation_expression(candidates)
            writers = {
                split: _SplitWriter(tmp, split, self.rows_per_shard, self.formats) for split in ("train", "validation")
            }
            columns = ["text", "document_id", "source", "sentence_index", "occurrences"]
            chars_out = 0
            for path in deduped:
                frame = pl.read_ipc(path).with_columns(is_validation.alias("_validation"))
                chars_out += int(frame["text"].str.len_chars().sum() or 0)
                writers["validation"].add(frame.filter(pl.col("_validation")).select(columns))
                writers["train"].add(frame.filter(~pl.col("_validation")).select(columns))
                os.remove(path)
            sizes = {split: writer.close() for split, writer in writers.items()}
            shutil.rmtree(dedup_dir, ignore_errors=True)
            _write_quarantine(tmp, spill.quarantine)
            _publish(tmp, output_path, run.owned)

            stats = {
                "stage": self.name,
                "output": output_path,
                "parameters": self.parameters(),
                "documents_in": spill.documents_in + spill.quarantine.counts.total(),
                "documents_out": spill.documents_with_sentences,
                "characters_in": spill.characters_in,
                "characters_out": chars_out,
                "removed": {f"sentence:{k}": v for k, v in sorted(spill.removed.items())},
                "quarantined": dict(spill.quarantine.counts),
                "quarantined_total": spill.quarantine.counts.total(),
                "sentences_in": spill.sentences_in,
                "splits": sizes,
                "extra": {
                    "sentences in": spill.sentences_in,
                    "sentences train": sizes["train"],
                    "sentences validation": sizes["validation"],
                },
                "seconds": round(time.time() - started, 3),
            }
            run.complete(stats)
        return stats

    def _validation_expression(self, candidates: list[pl.DataFrame]) -> pl.Expr:
        if self.validation_count is None:
            threshold = _split_threshold(self.validation_ratio or 0.0)
            if threshold >= HASH_SPACE:
                return pl.lit(True)
            return pl.col("split_hash") < pl.lit(threshold, dtype=pl.UInt64)
        if not candidates or self.validation_count == 0:
            return pl.lit(False)
        chosen = pl.concat(candidates).sort(["split_hash", "text"]).head(self.validation_count)
        last_hash, last_text = chosen.row(chosen.height - 1)
        last = pl.lit(last_hash, dtype=pl.UInt64)
        return (pl.col("split_hash") < last) | ((pl.col("split_hash") == last) & (pl.col("text") <= last_text))


def _cached_splitter(language: object) -> SentenceSplitter:
    code = normalize_language(language)
    splitter = _SPLITTERS.get(code)
    if splitter is None:
        splitter = _SPLITTERS[code] = SentenceSplitter(code)
    return splitter


# --------------------------------------------------------------------------------------------
# Pair export


def field_value(record: dict[str, Any], path: str) -> Any:
    """A record field by name: ``text``, ``id``, ``source``, ``added``, ``created``, or a metadata
    key (``title``, ``metadata.title``, dotted paths into nested metadata: ``nordpipe.language``)."""
    if path in ("text", "id", "source", "added", "created"):
        return record.get(path)
    metadata = record.get("metadata") or {}
    if path.startswith("metadata."):
        path = path[len("metadata.") :]
    if path in metadata:
        return metadata[path]
    value: Any = metadata
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def url_group(url: str, depth: int | None) -> str:
    """``https://www.kk.dk/borger/affald/sortering?x=1`` -> ``www.kk.dk/borger/affald`` at depth 2
    (host lower-cased, query and fragment dropped; depth None keeps the whole path)."""
    parts = urlsplit(url.strip())
    segments = [s for s in parts.path.split("/") if s]
    if depth is not None:
        segments = segments[:depth]
    return "/".join([parts.netloc.lower(), *segments])


def _text_of(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return None


def text_id(prefix: str, text: str) -> str:
    """A stable id for a query or corpus text: the prefix and the text's xxh3-64 in hex."""
    return prefix + xxhash.xxh3_64_hexdigest(text.encode("utf-8"))


class PairExport:
    """(anchor, positive) pairs with a grouped train/test split and retrieval-evaluation files.

    Args:
        anchor: field of the anchor (query side), e.g. ``title`` (see ``field_value``).
        positive: field of the positive (document side), e.g. ``text`` or ``ingress``.
        group_by: field whose value groups documents that must stay in one split (default
            ``id``: every document on its own). URL values group by host and path.
        group_depth: keep only the first N path segments of a URL group key (default None:
            the whole path), e.g. 1 puts every page under ``/borger/`` in one group.
        test_ratio: share of groups that go to ``test`` (default 0.1), by hash of the group key.
        min_anchor_chars / min_positive_chars: shortest anchor/positive kept (default 1 / 1).
        corpus: ``test`` (default: the IR corpus holds the test positives) or ``all`` (train
            positives too, as distractors).
        formats: any of ``parquet`` and ``jsonl`` (default parquet).
        rows_per_shard: rows per output file (default 1,000,000).
        seed: seed of the split hash (default 0).
    """

    name = "export pairs"

    def __init__(
        self,
        anchor: str,
        positive: str,
        group_by: str = "id",
        group_depth: int | None = None,
        test_ratio: float = 0.1,
        min_anchor_chars: int = 1,
        min_positive_chars: int = 1,
        corpus: str = "test",
        formats: tuple[str, ...] = ("parquet",),
        rows_per_shard: int = 1_000_000,
        seed: int = 0,
    ):
        if not 0 <= test_ratio <= 1:
            raise ValueError("test_ratio must be between 0 and 1")
        if anchor == positive:
            raise ValueError("anchor and positive must be different fields")
        if corpus not in ("test", "all"):
            raise ValueError(f"corpus must be 'test' or 'all', not {corpus!r}")
        if group_depth is not None and group_depth < 0:
            raise ValueError("group_depth must be >= 0")
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            raise ValueError(f"formats must be among {', '.join(FORMATS)}")
        if rows_per_shard < 1:
            raise ValueError("rows_per_shard must be >= 1")
        self.anchor = anchor
        self.positive = positive
        self.group_by = group_by
        self.group_depth = group_depth
        self.test_ratio = test_ratio
        self.min_anchor_chars = max(1, min_anchor_chars)
        self.min_positive_chars = max(1, min_positive_chars)
        self.corpus = corpus
        self.formats = tuple(f for f in FORMATS if f in formats)
        self.rows_per_shard = rows_per_shard
        self.seed = seed

    def parameters(self) -> dict[str, Any]:
        return {
            "anchor": self.anchor, "positive": self.positive, "group_by": self.group_by,
            "group_depth": self.group_depth, "test_ratio": self.test_ratio,
            "min_anchor_chars": self.min_anchor_chars, "min_positive_chars": self.min_positive_chars,
            "corpus": self.corpus, "formats": list(self.formats), "rows_per_shard": self.rows_per_shard,
            "seed": self.seed,
        }

    def group_key(self, record: dict[str, Any]) -> str | None:
        value = field_value(record, self.group_by)
        if value is None or isinstance(value, dict | list):
            return None
        text = str(value).strip()
        if not text:
            return None
        if "://" in text:
            return url_group(text, self.group_depth)
        return text

    def split_of(self, group: str) -> str:
        """``train`` or ``test`` for a group key: depends on nothing but the key and the seed."""
        value = xxhash.xxh3_64_intdigest(group.encode("utf-8"), seed=self.seed)
        return "test" if value < _split_threshold(self.test_ratio) else "train"

    def pair_of(self, record: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
        """``(anchor, positive, None)`` cleaned, or ``(None, None, rule)`` when the record gives no pair."""
        raw_anchor = _text_of(field_value(record, self.anchor))
        if raw_anchor is None:
            return None, None, "missing_anchor"
        raw_positive = _text_of(field_value(record, self.positive))
        if raw_positive is None:
            return None, None, "missing_positive"
        anchor = clean_field_text(raw_anchor, single_line=True)
        if len(anchor) < self.min_anchor_chars:
            return None, None, "short_anchor"
        positive = clean_field_text(raw_positive, single_line=False)
        if len(positive) < self.min_positive_chars:
            return None, None, "short_positive"
        if anchor == positive:
            return None, None, "anchor_equals_positive"
        return anchor, positive, None

    def run(self, input_path: str, output_path: str) -> dict[str, Any]:
        """Export pairs from every document under ``input_path`` to ``output_path``."""
        from nordpipe.runner import RunOptions, StageRun, pause_for_tests

        started = time.time()
        # Exports rebuild OUTPUT on every run, so other parameters need no --force: the earlier
        # export's folders are replaced when this one is done (and only those: StageRun refuses
        # any other OUTPUT).
        with StageRun(self.name, input_path, output_path, RunOptions(), self.parameters(), rebuilds=True) as run, \
                _work_dir(run.output_path) as tmp:
            files = run.files
            pause_for_tests("export")
            quarantine = _Quarantine()
            removed: Counter[str] = Counter()
            seen_pairs: set[int] = set()
            train_queries: set[int] = set()
            queries: dict[str, str] = {}
            corpus: dict[str, str] = {}
            relevant: set[tuple[str, str]] = set()
            groups: dict[str, set[str]] = {"train": set(), "test": set()}
            writers = {s: _SplitWriter(tmp, s, self.rows_per_shard, self.formats) for s in ("train", "test")}
            buffers: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
            documents_in = chars_in = chars_out = missing_group = 0
            schema = {
                "anchor": pl.String, "positive": pl.String, "document_id": pl.String, "group": pl.String,
                "query_id": pl.String, "corpus_id": pl.String,
            }

            def flush(split: str) -> None:
                writers[split].add(pl.DataFrame(buffers[split], schema=schema, orient="row"))
                buffers[split] = []

            for path in files:
                for _line, record in iter_documents(path, quarantine):
                    documents_in += 1
                    chars_in += len(record["text"])
                    anchor, positive, rule = self.pair_of(record)
                    if rule is not None:
                        removed[rule] += 1
                        continue
                    assert anchor is not None and positive is not None
                    pair_hash = xxhash.xxh3_128_intdigest(f"{anchor}\x00{positive}".encode())
                    if pair_hash in seen_pairs:
                        removed["duplicate_pair"] += 1
                        continue
                    seen_pairs.add(pair_hash)
                    group = self.group_key(record)
                    if group is None:
                        missing_group += 1
                        group = "id:" + record["id"]
                    split = self.split_of(group)
                    groups[split].add(group)
                    query_id, corpus_id = text_id("q", anchor), text_id("c", positive)
                    if split == "test":
                        queries[query_id] = anchor
                        corpus[corpus_id] = positive
                        relevant.add((query_id, corpus_id))
                    else:
                        train_queries.add(xxhash.xxh3_64_intdigest(anchor.encode("utf-8")))
                        if self.corpus == "all":
                            corpus[corpus_id] = positive
                    chars_out += len(anchor) + len(positive)
                    buffers[split].append(
                        {"anchor": anchor, "positive": positive, "document_id": record["id"], "group": group,
                         "query_id": query_id, "corpus_id": corpus_id}
                    )
                    if len(buffers[split]) >= 10_000:
                        flush(split)
            for split in ("train", "test"):
                flush(split)
            sizes = {split: writer.close() for split, writer in writers.items()}
            straddling = groups["train"] & groups["test"]
            if straddling:  # cannot happen: the split is a function of the group key alone
                raise RuntimeError(f"groups in both splits: {sorted(straddling)[:5]}")
            self._write_ir(tmp, queries, corpus, relevant)
            _write_quarantine(tmp, quarantine)
            _publish(tmp, output_path, run.owned)
            seen_in_train = sum(
                xxhash.xxh3_64_intdigest(text.encode("utf-8")) in train_queries for text in queries.values()
            )
            pairs = sizes["train"] + sizes["test"]
            stats = {
                "stage": self.name,
                "output": output_path,
                "parameters": self.parameters(),
                "documents_in": documents_in + quarantine.counts.total(),
                "documents_out": pairs,
                "characters_in": chars_in,
                "characters_out": chars_out,
                "removed": {f"pair:{k}": v for k, v in sorted(removed.items())},
                "quarantined": dict(quarantine.counts),
                "quarantined_total": quarantine.counts.total(),
                "splits": sizes,
                "groups": {split: len(keys) for split, keys in groups.items()},
                "extra": {
                    "pairs train": sizes["train"],
                    "pairs test": sizes["test"],
                    "groups train": len(groups["train"]),
                    "groups test": len(groups["test"]),
                    "documents without group key": missing_group,
                    "ir queries": len(queries),
                    "ir corpus": len(corpus),
                    "ir relevant pairs": len(relevant),
                    "test queries also in train": seen_in_train,
                },
                "seconds": round(time.time() - started, 3),
            }
            run.complete(stats)
        return stats

    def _write_ir(self, tmp: str, queries: dict[str, str], corpus: dict[str, str],
                  relevant: set[tuple[str, str]]) -> None:
        frames = {
            "queries": pl.DataFrame({"id": list(queries), "text": list(queries.values())},
                                    schema={"id": pl.String, "text": pl.String}).sort("id"),
            "corpus": pl.DataFrame({"id": list(corpus), "text": list(corpus.values())},
                                   schema={"id": pl.String, "text": pl.String}).sort("id"),
            "relevant_docs": pl.DataFrame(sorted(relevant), schema={"query_id": pl.String, "corpus_id": pl.String},
                                          orient="row"),
        }
        folder = os.path.join(tmp, "ir")
        os.makedirs(folder)
        for name, frame in frames.items():
            if "parquet" in self.formats:
                frame.write_parquet(os.path.join(folder, f"{name}.parquet"), compression="zstd",
                                    compression_level=3, statistics=True)
            if "jsonl" in self.formats:
                frame.write_ndjson(os.path.join(folder, f"{name}.jsonl"))


def load_ir_evaluation(path: str) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """``(queries, corpus, relevant_docs)`` from a pairs export (its OUTPUT or ``OUTPUT/ir``),
    in the form ``sentence_transformers.evaluation.InformationRetrievalEvaluator`` takes."""
    folder = path if os.path.basename(path.rstrip("/")) == "ir" else os.path.join(path, "ir")

    def read(name: str) -> pl.DataFrame:
        parquet = os.path.join(folder, f"{name}.parquet")
        if os.path.exists(parquet):
            return pl.read_parquet(parquet)
        return pl.read_ndjson(os.path.join(folder, f"{name}.jsonl"))

    queries = dict(read("queries").iter_rows())
    corpus = dict(read("corpus").iter_rows())
    relevant: dict[str, set[str]] = {}
    for query_id, corpus_id in read("relevant_docs").iter_rows():
        relevant.setdefault(query_id, set()).add(corpus_id)
    return queries, corpus, relevant
