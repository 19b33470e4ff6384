"""Personal data outside ``text``: metadata fields, URLs, file names and document ids.

What is scanned (``FieldSelection``):

- by default every string in ``metadata``, recursively through nested objects and lists, but
  the known-safe fields (``SAFE_FIELDS``: license, dataset, language, source, added, created;
  and date-like keys: ``*date``, ``*_at``, ``*time``, ``timestamp``) and nordpipe's own
  bookkeeping under ``metadata["nordpipe"]``, except the values there that came from the
  source (``NORDPIPE_SOURCE_FIELDS``: a matched URL, a consent detail, a MinHash survivor's id);
- ``--fields``: only these (an explicit list overrides the safe list; ``none``: text only);
  ``--skip-fields``: not these. A name without a dot matches that key at any depth
  (``author`` matches ``meta.author``), a dotted one the path from the top of metadata and
  everything below it; ``*`` and ``?`` are wildcards. List positions are not part of paths.
- the document id (pseudo-field ``id``, on unless skipped).

How a string is scanned depends on what it is:

- a URL (``scheme://`` or ``www.``; ``metadata.url`` and any other field): the userinfo, each
  path segment, each query value and the fragment are percent-decoded (``+`` as space in the
  query), scanned, and only a changed piece is re-encoded, so the URL stays parseable and the
  rest of it byte-identical. ``/users/jens.hansen@x.dk`` becomes ``/users/%3CEMAIL%3E``.
- a file path (key in ``PATH_FIELDS``, e.g. ``path``, ``file``, ``source_file``): each segment's
  stem, extension kept; ids and stems are also scanned with ``_`` and ``/`` read as spaces
  (``Jens_Hansen``) and with a loose e-mail expression that accepts what follows the address
  (``jens.hansen@x.dk-3``): file names and ids glue words with punctuation the text scanner
  takes as part of a word.
- a person field (key in ``PERSON_FIELDS``: author, byline, creator...): what the scanner finds;
  if it finds nothing, the whole value is a ``NAME`` (such a field holds a person by definition,
  and a lone name without context is where the name finder is weakest).
- anything else: scanned like text.

Outside running text a bare run of digits is not taken for a phone, account or card number
(``_drop_bare_numbers``: ``/artikel/20123456``, ``forum-20123456`` are ids), except in a field
whose name says phone (``phone``, ``tel``, ``mobil``, ``fax``, ``contact``).

An id with personal data is replaced whole by ``pii-<32 hex>`` (HMAC-SHA256 of the id under the
key, ``keys.keyed_hex``), the same for the same id, so a MinHash survivor reference still names
its survivor; the old -> new mapping goes only to the audit.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

from nordpipe.documents import NORDPIPE_KEY
from nordpipe.pii.engine import Span
from nordpipe.pii.recognizers import BANK_ACCOUNT, CARD, EMAIL, NAME, PHONE

SAFE_FIELDS = frozenset({"license", "licence", "dataset", "language", "languages", "lang", "source", "added",
                         "created", "timestamp", "mime_type", "content_type", "encoding", "warc_type"})
"""Metadata keys never scanned by default: bookkeeping whose values are codes, names of datasets
or licenses, never a person's data."""

_DATE_KEY = re.compile(r"(?:date|_at|time|timestamp)$", re.I)
_DATE_VALUE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ,][\d:.+\-Z ,]*)?$")

NORDPIPE_SOURCE_FIELDS = ("nordpipe.urls.matched", "nordpipe.consent", "nordpipe.minhash.survivor")
"""Values under ``metadata["nordpipe"]`` that come from the source (a URL, an id), scanned."""

ID_FIELDS = frozenset({"nordpipe.minhash.survivor"})
"""Metadata paths holding a document id: replaced like ids (``pii-<hex>``), so they still match."""

PATH_FIELDS = frozenset({"path", "file", "filename", "file_name", "filepath", "file_path", "source_file",
                         "source_path", "raw_file", "raw_path"})
PERSON_FIELDS = frozenset({"author", "authors", "byline", "creator", "creators", "contributor", "contributors",
                           "editor", "editors", "user", "username", "user_name", "uploader", "owner", "speaker",
                           "sender", "recipient", "writer", "reporter", "photographer"})

ID_PREFIX = "pii-"
_URL = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*://|www\.)\S+$")
_LOOSE_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_KEYED_ID = re.compile(r"^pii-[0-9a-f]{32}$")
_GLUE = str.maketrans({"_": " ", "/": " ", "-": " "})


@dataclass(frozen=True)
class FieldSelection:
    """Which metadata paths are scanned (see the module docstring)."""

    fields: tuple[str, ...] | None = None  # None: every field but the safe ones
    skip: tuple[str, ...] = ()

    @classmethod
    def parse(cls, fields: list[str] | None, skip: list[str] | None) -> FieldSelection:
        def split(values: list[str] | None) -> tuple[str, ...]:
            return tuple(v.strip() for value in values or [] for v in value.split(",") if v.strip())

        wanted = split(fields)
        return cls(None if not wanted else () if wanted == ("none",) else wanted, split(skip))

    @property
    def ids(self) -> bool:
        return not _matches("id", self.skip)

    def wanted(self, path: str) -> bool:
        if _matches(path, self.skip):
            return False
        if self.fields is not None:
            return _matches(path, self.fields)
        if path.split(".", 1)[0] == NORDPIPE_KEY:
            return any(path == f or path.startswith(f + ".") for f in NORDPIPE_SOURCE_FIELDS)
        leaf = path.rsplit(".", 1)[-1]
        return leaf.lower() not in SAFE_FIELDS and not _DATE_KEY.search(leaf)

    def as_params(self) -> dict[str, Any]:
        return {"fields": list(self.fields) if self.fields is not None else None, "skip_fields": list(self.skip)}


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    leaf = path.rsplit(".", 1)[-1]
    for pattern in patterns:
        if fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, pattern + ".*"):
            return True
        if "." not in pattern and any(fnmatch.fnmatchcase(part, pattern) for part in path.split(".")):
            return True
        if "." not in pattern and fnmatch.fnmatchcase(leaf, pattern):
            return True
    return False


ScanFn = Callable[[str], list[Span]]
"""Scan one string (the document's language bound): non-overlapping spans in order."""
ReplaceFn = Callable[[str, list[Span]], tuple[str, list[str]]]
"""Replace spans in one string: (new string, the replacement of each span)."""


@dataclass
class Found:
    """One replaced span outside the text: where (``field``, the piece of a URL or path) and
    what (the span's offsets are in the decoded ``piece``), for the audit and the counts."""

    field: str
    piece: str
    span: Span
    replacement: str
    original: str


def _resolve(spans: list[Span]) -> list[Span]:
    """Non-overlapping spans in order, the longer one winning an overlap."""
    chosen: list[Span] = []
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def scan_glued(scan: ScanFn, value: str) -> list[Span]:
    """Spans in an id or file name: one scan with ``_``, ``/`` and hyphens read as spaces (same
    offsets; ``kunde-2110625629-1``, ``Jens_Hansen``; a dashed CPR, phone or personnummer is
    found with a space as well), plus loose e-mail addresses on the value as it is
    (``jens.hansen@x.dk-3``, ``anne-marie@x.dk``), whose hyphens the spaced scan would cut."""
    spaced = value.translate(_GLUE)
    spans = list(scan(spaced))
    if "@" in value:
        spans.extend(Span(m.start(), m.end(), EMAIL, "loose_email", 0.5) for m in _LOOSE_EMAIL.finditer(value))
    return _drop_bare_numbers(value, _resolve(spans)) if spans else []


_BARE_NUMBER_ENTITIES = frozenset({PHONE, BANK_ACCOUNT, CARD})
_PHONE_KEY = re.compile(r"phone|tel|mobil|fax|contact|kontakt", re.I)


def _drop_bare_numbers(value: str, spans: list[Span]) -> list[Span]:
    """Without the phone, account and card spans that are a bare run of digits: outside running
    text (ids, URL pieces, file names, metadata values) ``20123456`` is a post or article id
    far more often than a phone number (8 random digits are a valid Danish number 9 times in
    10), and replacing every numeric id would rename most of a forum crawl. Numbers written
    with a separator or ``+`` stay spans, and so do national identifiers (their check digits
    and dates make a random id match rarely)."""
    return [s for s in spans if s.entity not in _BARE_NUMBER_ENTITIES or not value[s.start : s.end].isdigit()]


_DIGIT_OR_AT = re.compile(r"[\d@]")


def may_hold_pii(value: str) -> bool:
    """False when the fast scanner can find nothing in ``value``: no digit (numbers, IPs), no
    ``@`` (e-mail), no capital letter (names, IBAN). Most metadata strings and URL pieces
    (``side``, ``artikel``) are lower-case words; skipping them saves the scanner's per-call overhead. Not for user recognizers (presidio engine),
    which may match anything."""
    return value.lower() != value or _DIGIT_OR_AT.search(value) is not None


def is_url(value: str) -> bool:
    return bool(_URL.match(value))


class FieldRedactor:
    """Redact one document's metadata strings, URLs, file names and id.

    ``scan(value)`` finds spans, ``replace(value, spans)`` writes the replacements (tags or
    fakes, the document's ``Replacer``), ``new_id(id)`` the keyed id.
    """

    def __init__(self, selection: FieldSelection, scan: ScanFn, replace: ReplaceFn, new_id: Callable[[str], str]):
        self.selection = selection
        self.scan = scan
        self.replace = replace
        self.new_id = new_id

    # --- strings ---------------------------------------------------------------------------

    def _plain(self, field: str, value: str, glued: bool, person: bool, found: list[Found]) -> str:
        spans = scan_glued(self.scan, value) if glued else self.scan(value)
        if spans and not glued and not _PHONE_KEY.search(field.rsplit(".", 1)[-1]):
            spans = _drop_bare_numbers(value, spans)
        if not spans and person and value.strip() and any(c.isalpha() for c in value):
            start = len(value) - len(value.lstrip())
            spans = [Span(start, len(value.rstrip()), NAME, "person_field", 0.5)]
        if not spans:
            return value
        new, written = self.replace(value, spans)
        found.extend(Found(field, value, s, w, value[s.start : s.end]) for s, w in zip(spans, written, strict=True))
        return new

    def _path(self, field: str, value: str, found: list[Found]) -> str:
        parts = value.split("/")
        out = []
        for part in parts:
            stem, dot, ext = part.rpartition(".") if "." in part[1:] else (part, "", "")
            if dot and (len(ext) > 5 or not ext.isalnum()):
                stem, dot, ext = part, "", ""
            if not stem:
                out.append(part)
                continue
            # the stem first, so an extension stays; then the whole piece (``a@b.dk``: the
            # "extension" was the top-level domain)
            pending: list[Found] = []
            new_stem = self._plain(field, stem, True, False, pending)
            if pending or not dot:
                found.extend(pending)
                out.append(new_stem + dot + ext)
            else:
                out.append(self._plain(field, part, True, False, found))
        return "/".join(out)

    def _url(self, field: str, url: str, found: list[Found]) -> str:
        scheme_end = url.find("://")
        head, rest = (url[: scheme_end + 3], url[scheme_end + 3 :]) if scheme_end >= 0 else ("", url)
        rest, hash_, fragment = rest.partition("#")
        rest, qmark, query = rest.partition("?")
        authority, slash, path = rest.partition("/")
        if "@" in authority:  # user[:password]@host
            userinfo, _, host = authority.rpartition("@")
            new_user = self._encoded(field, userinfo, found, safe=":")
            authority = f"{new_user}@{host}"
        if path:
            segments = path.split("/")
            path = "/".join(self._encoded(field, segment, found, safe="@:+,;=!$&'()*~", as_path=True)
                            for segment in segments)
        if query:
            pairs = []
            for pair in query.split("&"):
                key, eq, val = pair.partition("=")
                if eq:
                    pairs.append(key + eq + self._encoded(field, val, found, safe="", plus=True))
                else:
                    pairs.append(self._encoded(field, pair, found, safe="", plus=True))
            query = "&".join(pairs)
        if fragment:
            fragment = self._encoded(field, fragment, found, safe="/?=&:@!$'()*+,;~")
        return head + authority + slash + path + qmark + query + hash_ + fragment

    def _encoded(self, field: str, raw: str, found: list[Found], safe: str, plus: bool = False,
                 as_path: bool = False) -> str:
        """Decode one URL piece, redact it, re-encode it only if it changed."""
        decoded = unquote_plus(raw) if plus else unquote(raw)
        if not decoded.strip():
            return raw
        new = self._path(field, decoded, found) if as_path else self._plain(field, decoded, True, False, found)
        if new == decoded:
            return raw
        return quote(new, safe=safe)

    def redact_string(self, field: str, value: str, found: list[Found]) -> str:
        if is_url(value):
            return self._url(field, value, found)
        leaf = field.rsplit(".", 1)[-1].lower()
        if leaf in PATH_FIELDS:
            return self._path(field, value, found)
        if _DATE_VALUE.match(value):
            return value
        return self._plain(field, value, False, leaf in PERSON_FIELDS, found)

    # --- documents -------------------------------------------------------------------------

    def redact_metadata(self, metadata: dict[str, Any], found: list[Found]) -> None:
        """Redact the selected strings of ``metadata`` in place."""
        for key in list(metadata):
            if key.startswith("_nordpipe_"):  # transient reader keys (input stem, line): never written
                continue
            metadata[key] = self._value(str(key), metadata[key], found)

    def _value(self, path: str, value: Any, found: list[Found]) -> Any:
        if isinstance(value, str):
            if not value or not self.selection.wanted(path):
                return value
            if path in ID_FIELDS:
                return self.redact_id(value, found, field=path)
            return self.redact_string(path, value, found)
        if isinstance(value, dict):
            for key in list(value):
                value[key] = self._value(f"{path}.{key}", value[key], found)
            return value
        if isinstance(value, list):
            return [self._value(path, item, found) for item in value]
        return value

    def redact_id(self, doc_id: str, found: list[Found], field: str = "id") -> str:
        """``doc_id``, or ``pii-<hex>`` when it holds personal data."""
        if _KEYED_ID.match(doc_id):  # already replaced (a rerun on this stage's output)
            return doc_id
        spans = scan_glued(self.scan, doc_id)
        if not spans:
            return doc_id
        new = self.new_id(doc_id)
        found.extend(Found(field, doc_id, s, new, doc_id[s.start : s.end]) for s in spans)
        return new


def iter_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """``(path, string)`` of every string in a nested value (for tests and checks)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for item in value:
            yield from iter_strings(item, path)
