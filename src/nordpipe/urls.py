"""URL filtering (blocklists, banned words) and consent filtering (robots.txt, ai.txt, TDMRep).

Two datatrove pipeline steps, both reading ``metadata["url"]``:

``UrlBlocklistFilter`` (reason ``urls:<rule>``) removes a document when, in this order:

1. ``no_url``: it has no URL and ``require_url`` is set (otherwise it passes);
2. (an allowlisted host or parent domain keeps the document: no URL rule applies; with the Nordic
   exceptions this includes the shipped ``nordic_allowlist.txt``, Nordic news and public sites);
3. ``blocklist(<category>)``: its host or a parent domain is on a blocklist (datatrove's bundled
   list, UT1 ``adult``, is category ``adult``; the shipped UT1 lists and other project lists use
   their folder name: ``gambling``, ``phishing``, ``malware``, ``scam``; user lists ``user``);
4. ``url_list(<category>)``: the URL itself is on an exact-URL list;
5. ``banned_word``: a word of the URL is on datatrove's banned-word list;
6. ``soft_banned_words``: at least ``soft_word_threshold`` words are on its soft list;
7. ``banned_subword``: a datatrove banned sub-word occurs in the normalized URL.

Rules 5-7 use datatrove's lists and its definition of URL words (runs of ASCII letters and
digits, case kept). On hosts under a Nordic ccTLD (``.dk .no .se .fi .is .fo .gl .ax``) the words
in ``nordpipe/data/blocklists/nordic_word_exceptions.txt`` (package data) do not count
(``slut`` is Danish/Swedish for "end", ``fag`` Danish/Norwegian for "subject", ...).

An entry on several categories' lists is reported under the first category of
``blocklists.CATEGORY_PRECEDENCE`` (phishing before malware: UT1 lists most phishing URLs in
both). A store list named like a shipped one (``<store>/gambling/ut1-gambling.txt`` after
``blocklists update``) replaces it, so that entries UT1 has since dropped are no longer used.

Load cost of the shipped UT1 lists (``benchmarks/bench_blocklists.py``): 84k entries parsed
and hashed once per worker, 0.35 s and 10 MB (the ``.example`` placeholders: 0.08 s), on top of
datatrove's UT1 adult index (~0.4 s, 94 MB); 2 shared cores at load average 10, so noisy.

Differences from datatrove's ``URLFilter`` by default, each switched off by
``datatrove_compatible=True``:

- a blocklisted domain also removes its subdomains at any depth. datatrove checks only the
  registered domain (per the Public Suffix List) and the full host, so an entry
  ``a.example.com`` does not remove ``b.a.example.com``, and entries that are public suffixes
  (``sex.pl``) remove nothing;
- an exact-URL entry (datatrove's list holds them without scheme) also matches the URL without
  its scheme; datatrove compares the whole string, so its URL list never matches a URL with
  ``https://``;
- the Nordic word exceptions and the Nordic allowlist.

In compatible mode the decisions equal datatrove's (``benchmarks/bench_urls.py`` checks this on a
million URLs). The fast path hashes the host and its parent domains and looks them up in a
sorted hash array; only a URL whose host is not plain lower-case ASCII, or that hits the list,
goes through ``tldextract`` (the parser datatrove uses, here with its bundled Public Suffix List
snapshot and no network).

``ConsentFilter`` (reason ``consent:<signal>@<snapshot date>``) removes documents whose site
opted out of AI training, as recorded by ``nordpipe robots fetch`` in its SQLite cache (see
``nordpipe.robots``): e.g. ``consent:robots.txt(GPTBot)@2026-11-20``. Documents whose site's
consent is unknown (its files could not be fetched: offline, DNS, timeout, 5xx) are kept and
marked ``metadata.nordpipe.consent = "unknown:<signal>@<date>"`` (``unknown="keep"``, the
default) or removed as ``consent:unknown:<signal>@<date>`` (``unknown="remove"``). ``run_urls``
refuses to run when the cache holds only failures for the hosts of its input, unless the policy
for unknown consent was given explicitly.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from tldextract.remote import lenient_netloc

from nordpipe.blocklists import (
    DATATROVE_CATEGORY,
    NORDIC_ALLOWLIST_NAME,
    NORDIC_EXCEPTIONS_NAME,
    NORDIC_TLDS,
    DatatroveLists,
    DomainIndex,
    default_store,
    hash_strings,
    list_categories,
    load_datatrove_lists,
    normalize_domain,
    ordered_list_files,
    read_list_file,
    read_word_exceptions,
    shipped_blocklists,
    shipped_file,
)
from nordpipe.documents import NORDPIPE_KEY, mark_removed, nordpipe_meta
from nordpipe.lazy_imports import LazyModule
from nordpipe.process_cache import file_identity, shared
from nordpipe.steps import DocumentFilter

np = LazyModule("numpy")  # imported where used: in the workers (nordpipe.lazy_imports)
pl = LazyModule("polars")

_URL_WORDS = re.compile(r"[^a-zA-Z0-9]+")
_PLAIN_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)+")
# The same steps as tldextract's lenient host parsing, for polars (Rust regex). Hosts that come
# out plain (_PLAIN_HOST_RE) equal lenient_netloc's; all others are parsed again in Python.
_SCHEME = r"^(?:[A-Za-z0-9+.-]+:)?//"
_AFTER_HOST = r"(?s)[/?#].*"
_PLAIN_HOST_RE = r"^[a-z0-9_-]+(?:\.[a-z0-9_-]+)+$"
_FIRST_LABEL = r"^[^.]*\."
_UP_TO_SCHEME = r"(?s)^.*?://"
_NON_WORD = "[^a-zA-Z0-9]"
_NORDIC_SUFFIXES = tuple("." + tld for tld in NORDIC_TLDS)

DATATROVE_REASONS = {
    "domain": f"blocklist({DATATROVE_CATEGORY})",
    "subdomain": f"blocklist({DATATROVE_CATEGORY})",
    "url": f"url_list({DATATROVE_CATEGORY})",
    "hard_blacklisted": "banned_word",
    "soft_blacklisted": "soft_banned_words",
    "blacklisted_subword": "banned_subword",
}
"""datatrove ``URLFilter`` reasons -> ours (for comparisons)."""


url_host = lenient_netloc
"""The host of a URL as tldextract reads it (lenient: scheme optional, case kept)."""


def parent_domains(host: str) -> list[str]:
    """``a.b.example.com`` -> ``[a.b.example.com, b.example.com, example.com]`` (at least two labels)."""
    out = [host]
    start = host.find(".")
    while start != -1:
        rest = host[start + 1 :]
        if "." not in rest:
            break
        out.append(rest)
        start = host.find(".", start + 1)
    return out if "." in host else []


def _lookup_host(host: str) -> str:
    """Lower-case, IDNA-encoded host for our own lists (datatrove's list is matched as datatrove does)."""
    plain = host.lower().strip(".")
    if plain.isascii():
        return plain
    return normalize_domain(plain) or plain


def is_nordic_host(host: str) -> bool:
    return host.lower().rstrip(".").endswith(_NORDIC_SUFFIXES)


class UrlBlocklistFilter(DocumentFilter):
    """Remove documents by URL: blocklisted domains and URLs, banned words (see module doc).

    Args:
        datatrove_list: use datatrove's bundled domain/URL list and word lists (default True).
        project_lists: use the project's lists (``nordpipe/data/blocklists/<category>/``, shipped
            with the package) and the local store (default True).
        categories: project/store categories to use (default None: all). A category found in
            neither the list folder nor the store is an error (``ValueError``), not an empty list.
        blocklists_dir: the project's list folder (default None: the shipped lists, found with
            ``importlib.resources`` when the step loads; recorded as None in run parameters, so
            they do not depend on where nordpipe is installed).
        store: the ``blocklists update`` store (default ``blocklists.default_store()``).
        blocklists: user list files (category ``user``; domains, hosts, adblock or URL lines).
        allowlists: list files whose domains (and their subdomains) are never removed by a URL rule.
        banned_words: apply datatrove's banned / soft / sub-word rules (default True).
        soft_word_threshold: soft-listed words needed to remove a URL (default 2, as datatrove).
        nordic_exceptions: ignore innocent Nordic words on Nordic hosts and never remove the
            Nordic news and public sites of the shipped ``nordic_allowlist.txt`` (default True).
        datatrove_compatible: decide exactly as datatrove's ``URLFilter`` for its list (default
            False; implies no Nordic exceptions).
        require_url: remove documents without ``metadata.url`` (default False: they pass).
        batch_size: documents decided together (default 8192; the vectorized steps have a fixed
            cost per batch, and a batch of documents is held in memory).

    A configured list that is missing is an error naming it, never an empty list: a missing
    ``blocklists``/``allowlists`` file, ``blocklists_dir``, shipped lists folder or (with
    ``nordic_exceptions``) exceptions or Nordic allowlist file raises ``FileNotFoundError``, an unknown category
    ``ValueError``; checked at construction and again when a worker loads the lists.
    """

    name = "urls"

    def __init__(
        self,
        datatrove_list: bool = True,
        project_lists: bool = True,
        categories: Sequence[str] | None = None,
        blocklists_dir: str | Path | None = None,
        store: str | Path | None = None,
        blocklists: Sequence[str | Path] = (),
        allowlists: Sequence[str | Path] = (),
        banned_words: bool = True,
        soft_word_threshold: int = 2,
        nordic_exceptions: bool = True,
        datatrove_compatible: bool = False,
        require_url: bool = False,
        batch_size: int = 8192,
    ):
        super().__init__()
        self.datatrove_list = datatrove_list
        self.project_lists = project_lists
        self.categories = list(categories) if categories else None
        self.blocklists_dir = str(blocklists_dir) if blocklists_dir else None
        self.store = str(store) if store else None
        self.blocklists = [str(p) for p in blocklists]
        self.allowlists = [str(p) for p in allowlists]
        self.banned_words = banned_words
        self.soft_word_threshold = soft_word_threshold
        self.nordic_exceptions = nordic_exceptions and not datatrove_compatible
        self.datatrove_compatible = datatrove_compatible
        self.require_url = require_url
        self.batch_size = batch_size
        self._loaded = False
        self.check_configured_lists()

    # ---------------------------------------------------------------------------------------
    # Loading (in the worker, not at construction: steps are pickled to tasks)

    def project_lists_dir(self) -> Path:
        """The project's list folder: ``blocklists_dir``, else the shipped lists."""
        if self.blocklists_dir is None:
            return shipped_blocklists()
        folder = Path(self.blocklists_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"blocklists folder {folder} does not exist")
        return folder

    def check_configured_lists(self) -> None:
        """Fail loudly on a configured list that is not there: a missing list file or folder
        (``FileNotFoundError``) or an unknown category (``ValueError``), never an empty list."""
        for kind, paths in (("blocklist", self.blocklists), ("allowlist", self.allowlists)):
            for path in paths:
                if "://" not in path and not Path(path).is_file():  # (remote fsspec URLs fail when read)
                    raise FileNotFoundError(f"{kind} {path} does not exist")
        if self.nordic_exceptions:
            shipped_file(NORDIC_EXCEPTIONS_NAME)
            shipped_file(NORDIC_ALLOWLIST_NAME)
        if not self.project_lists:
            return
        folder = self.project_lists_dir()
        if self.categories:
            store = Path(self.store) if self.store else default_store()
            known = set(list_categories(folder)) | set(list_categories(store))
            if self.datatrove_list:
                known.add(DATATROVE_CATEGORY)  # datatrove's list, used whatever --category says
            unknown = [c for c in self.categories if c not in known]
            if unknown:
                raise ValueError(
                    f"unknown blocklist categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}: "
                    f"no such folder in {folder} or in the store {store} (known: {', '.join(sorted(known)) or 'none'})"
                )

    _LOADED = ("_dt", "list_files", "_own", "_own_urls", "_allow", "_exceptions", "_banned", "_soft", "_subword_list",
               "_whole_word_pattern", "_subword_grams", "_schemeless_urls", "_url_hashes", "_extractor", "_tld_cache",
               "_dt_has_empty")
    """What ``load`` sets: read-only after loading, shared by the tasks of one worker process."""

    def load(self) -> None:
        """Read the lists, once per worker process for a given configuration and the same list
        files (``nordpipe.process_cache``): every task's copy of the step then shares them."""
        if self._loaded:
            return
        self.check_configured_lists()
        sources: list[tuple[str, Path]] = []
        if self.project_lists:
            sources += ordered_list_files(self.project_lists_dir(), self.store or default_store(), self.categories)
        sources += [("user", Path(p)) for p in self.blocklists]
        allow_files = [*self.allowlists, *([shipped_file(NORDIC_ALLOWLIST_NAME)] if self.nordic_exceptions else [])]
        key = ("urls.UrlBlocklistFilter", self.datatrove_list, self.banned_words, self.soft_word_threshold,
               self.nordic_exceptions, self.datatrove_compatible,
               tuple((category, file_identity(path)) for category, path in sources),
               tuple(file_identity(path) for path in allow_files))
        loaded = shared(key, lambda: self._read_lists(sources, allow_files))
        self.__dict__.update(loaded)
        self._loaded = True

    def _read_lists(self, sources: list[tuple[str, Path]], allow_files: list[Any]) -> dict[str, Any]:
        """Build everything ``load`` provides; returns the attributes (``_LOADED``)."""
        # datatrove's lists are the same for every configuration: one copy per process (~50 MB)
        self._dt: DatatroveLists | None = (shared(("blocklists.datatrove_lists",), load_datatrove_lists)
                                           if self.datatrove_list else None)
        lists: list[tuple[str, Iterable[str]]] = []
        url_entries: dict[str, str] = {}
        self.list_files: list[str] = []
        for category, path in sources:
            parsed = read_list_file(path, category)
            lists.append((category, parsed.domains))
            for url in parsed.urls:
                url_entries.setdefault(url, category)
            self.list_files.append(str(path))
        self._own = DomainIndex.from_lists(lists)
        self._own_urls = url_entries
        allow = [(f"allow:{p}", read_list_file(p, "allow").domains) for p in allow_files]
        self._allow = DomainIndex.from_lists(allow)
        self._exceptions = (
            read_word_exceptions(shipped_file(NORDIC_EXCEPTIONS_NAME)) if self.nordic_exceptions else frozenset()
        )
        self._banned: frozenset[str] = frozenset()
        self._soft: frozenset[str] = frozenset()
        self._subword_list: list[str] = []
        self._whole_word_pattern = ""
        if self.banned_words and self._dt is not None:
            self._banned, self._soft = self._dt.banned_words, self._dt.soft_banned_words
            self._subword_list = sorted(w for w in self._dt.banned_subwords if w)
            # Prefilters that flag a superset of the URLs a word rule may remove; `_word_rule`
            # then decides those exactly. Whole words: one regex, a listed word between
            # non-alphanumerics (words are letters and digits only, so need no escaping).
            words = sorted(self._banned | self._soft, key=len, reverse=True)
            if "" in words or self.soft_word_threshold <= 0:
                # An empty listed word matches every URL with a leading or trailing separator;
                # a threshold of 0 removes every URL: no prefilter, every URL is checked.
                self._whole_word_pattern = "^"
            elif words:
                self._whole_word_pattern = f"(?:^|{_NON_WORD})(?:{'|'.join(words)})(?:{_NON_WORD}|$)"
        self._subword_grams = SubwordGrams(self._subword_list) if self._subword_list else None
        # Hashes of every exact-URL entry, for the bulk prefilter of `_remove_listed_urls`.
        self._schemeless_urls = bool(self._own_urls) or (self._dt is not None and not self.datatrove_compatible)
        url_keys = list(self._own_urls) + (list(self._dt.urls) if self._dt is not None else [])
        self._url_hashes = np.unique(hash_strings(url_keys)) if url_keys else np.empty(0, dtype=np.uint64)
        self._extractor = None
        if self._dt is not None and self.datatrove_compatible:
            self.extractor("example.com")  # parses the Public Suffix List snapshot now (~0.2 s)
        self._tld_cache: dict[str, tuple[str, str]] = {}

        # datatrove's set would hold "" if its list had a blank line, removing every URL whose
        # registered domain is empty (IP addresses, localhost); the fast path must then defer.
        self._dt_has_empty = bool(self._dt is not None and self._dt.domains.contains(""))
        return {name: getattr(self, name) for name in self._LOADED}

    @property
    def extractor(self) -> Any:
        """tldextract with its bundled Public Suffix List snapshot (never fetches at run time)."""
        if self._extractor is None:
            from tldextract import TLDExtract

            self._extractor = TLDExtract(suffix_list_urls=(), cache_dir=None)
        return self._extractor

    # ---------------------------------------------------------------------------------------
    # Deciding

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.load()
        documents = iter(data)
        while batch := list(islice(documents, self.batch_size)):
            yield from self._run_batch(batch)

    def filter(self, doc: Document) -> str | None:
        """Decide one document (the pipeline decides in batches; this is for direct use)."""
        self.load()
        url = doc.metadata.get("url")
        decisions = self.decide([url if isinstance(url, str) and url else None])
        return decisions[0][0]

    def _run_batch(self, batch: list[Document]) -> Iterable[Document]:
        # Per-document work in comprehensions: at a few microseconds per URL for the decision
        # itself, a Python loop over the batch would cost as much again.
        metas = [doc.metadata for doc in batch]
        states = [meta.get(NORDPIPE_KEY) for meta in metas]
        active = batch
        if any(states):
            keep = [number for number, state in enumerate(states) if not (state and state.get("removed"))]
            active, metas = [batch[n] for n in keep], [metas[n] for n in keep]
        urls: list[str | None] = [meta.get("url") for meta in metas]
        urls = [url if type(url) is str and url and not url.isspace() else None for url in urls]
        with self.track_time("batch"):
            removed = self.decide_removed(urls)
        rules: Counter[str] = Counter()
        for number, (rule, detail) in removed.items():
            doc = active[number]
            mark_removed(doc, f"{self.name}:{rule}")
            if detail:
                nordpipe_meta(doc)["urls"] = {"matched": detail}
            rules[rule] += 1
        # One update per batch and counter (totals are what the runner reads).
        if len(active) > len(removed):
            self.stat_update("kept", value=len(active) - len(removed))
        if removed:
            self.stat_update("removed", value=len(removed))
        for rule, count in rules.items():
            self.stat_update(f"removed:{rule}", value=count)
        if len(batch) > len(active):
            self.stat_update("skipped_already_removed", value=len(batch) - len(active))
        return batch

    def decide(self, urls: Sequence[str | None]) -> list[tuple[str | None, str | None]]:
        """``(rule, matched)`` for each URL: the rule that removes it (None: kept) and what matched."""
        removed = self.decide_removed(urls)
        return [removed.get(number, (None, None)) for number in range(len(urls))]

    def decide_removed(self, urls: Sequence[str | None]) -> dict[int, tuple[str, str | None]]:
        """``{position: (rule, matched)}`` for the URLs to remove (None means no URL).

        Vectorized over the batch (polars): hosts are cut out of the URLs with two anchored
        regexes; every host and parent domain is hashed in one call and looked up in the hash
        indexes; the word rules run as one whole-word regex and one sub-word regex whose hits
        are then checked exactly, in Python, with datatrove's definitions. URLs whose host is
        not plain lower-case ASCII (upper case, IDN, ports, user info, IP literals...) take the
        exact Python path (``tldextract``'s host parsing), as do, in compatible mode, URLs
        whose host or a parent domain is on datatrove's list (``_datatrove_candidates``).
        """
        self.load()
        removed: dict[int, tuple[str, str | None]] = {}
        rows = [number for number, url in enumerate(urls) if url is not None] if None in urls else range(len(urls))
        if self.require_url and len(rows) < len(urls):
            have = set(rows)
            removed.update((number, ("no_url", None)) for number in range(len(urls)) if number not in have)
        if not rows:
            return removed
        present: list[str] = [urls[n] for n in rows] if len(rows) < len(urls) else urls  # type: ignore[assignment]
        series = _string_series(present)
        # Positions below are positions in `present`; `rows` maps them back.
        hosts = series.str.replace(_SCHEME, "").str.replace(_AFTER_HOST, "")
        plain = hosts.str.contains(_PLAIN_HOST_RE).fill_null(False).to_numpy()
        plain_at = np.flatnonzero(plain)
        odd_at = np.flatnonzero(~plain)
        strings, owners, depths = _parent_domains_bulk(hosts.filter(pl.Series(plain)), plain_at)
        # Hosts that are not plain: tldextract's parser, our normalization, in Python.
        odd_hosts: dict[int, str] = {}
        odd_strings: list[str] = []
        odd_owners: list[int] = []
        odd_depths: list[int] = []
        for position in odd_at.tolist():
            host = odd_hosts[position] = url_host(present[position])
            parents = parent_domains(host if _PLAIN_HOST.fullmatch(host) else _lookup_host(host))
            odd_strings += parents
            odd_owners += [position] * len(parents)
            odd_depths += range(len(parents))
        if odd_strings:
            strings = pl.concat([strings, _string_series(odd_strings)])
            owners = np.concatenate([owners, np.array(odd_owners, dtype=np.int64)])
            depths = np.concatenate([depths, np.array(odd_depths, dtype=np.int64)])
        hashes = hash_strings(strings)

        decided = np.zeros(len(present), dtype=bool)
        if len(self._allow):
            decided[owners[self._allow.positions(hashes) >= 0]] = True  # allowlisted: no URL rule applies
        if self._dt is not None:
            if self.datatrove_compatible:
                # datatrove looks up the registered domain and the full host as tldextract reads
                # them; a plain host none of whose parents is listed cannot match, the rest are
                # checked exactly.
                hit = self._dt.domains.positions(hashes) >= 0
                exact = np.union1d(owners[hit], odd_at if not self._dt_has_empty else np.arange(len(present)))
                exact = exact[~decided[exact]]
                hosts_of = {int(p): odd_hosts[int(p)] for p in odd_at}
                self._remove_exact_datatrove(present, exact, rows, removed, decided, hosts, hosts_of)
            else:
                hit = self._dt.domains.positions(hashes) >= 0
                hits = _first_hits(hit, owners, depths, decided)
                matched = strings.gather([index for _, index in hits]).to_list()
                for (position, _), domain in zip(hits, matched, strict=True):
                    removed[rows[position]] = (f"blocklist({DATATROVE_CATEGORY})", domain)
                    decided[position] = True
        if len(self._own):
            category = self._own.lookup(hashes)
            hits = _first_hits(category >= 0, owners, depths, decided)
            matched = strings.gather([index for _, index in hits]).to_list()
            for (position, index), domain in zip(hits, matched, strict=True):
                removed[rows[position]] = (f"blocklist({self._own.names[category[index]]})", domain)
                decided[position] = True
        self._remove_listed_urls(series, present, rows, removed, decided)
        if self._whole_word_pattern or self._subword_grams is not None:
            suspects = np.zeros(len(present), dtype=bool)
            if self._whole_word_pattern:
                suspects |= series.str.contains(self._whole_word_pattern).fill_null(False).to_numpy()
            sub_suspects = np.zeros(len(present), dtype=bool)
            if self._subword_grams is not None:
                sub_suspects[self._subword_grams.suspects(present)] = True
            for position in np.flatnonzero((suspects | sub_suspects) & ~decided).tolist():
                url = present[position]
                host = (odd_hosts.get(position) or url_host(url)) if self._exceptions else ""
                rule = self._word_rule(url, host, subwords=bool(sub_suspects[position]))
                if rule is not None:
                    removed[rows[position]] = rule
        return removed

    def _remove_exact_datatrove(self, present: list[str], positions: np.ndarray, rows: Sequence[int],
                                removed: dict[int, tuple[str, str | None]], decided: np.ndarray,
                                hosts: pl.Series, odd_hosts: dict[int, str]) -> None:
        """datatrove's own test (registered domain, then full host, via tldextract) for a few URLs.

        tldextract's answer depends only on the host it reads from the URL (``lenient_netloc``,
        which returns a host unchanged), so it is asked for the host and remembered per host.
        """
        if not len(positions):
            return
        cache = self._tld_cache
        if len(cache) > 20_000:  # bounded: a few MB
            cache.clear()
        pairs = []
        bulk_hosts = hosts.gather(positions).to_list()
        for position, bulk_host in zip(positions.tolist(), bulk_hosts, strict=True):
            host = odd_hosts.get(position, bulk_host)
            pair = cache.get(host)
            if pair is None:
                pair = cache[host] = self._datatrove_candidates(host)
            pairs.append(pair)
        flat = [c for pair in pairs for c in pair]
        found = self._dt.domains.positions(hash_strings(flat)) >= 0  # type: ignore[union-attr]
        for number, position in enumerate(positions.tolist()):
            for candidate, hit in zip(pairs[number], found[2 * number: 2 * number + 2], strict=True):
                if hit:
                    removed[rows[position]] = (f"blocklist({DATATROVE_CATEGORY})", candidate)
                    decided[position] = True
                    break

    def _remove_listed_urls(self, series: pl.Series, present: list[str], rows: Sequence[int],
                            removed: dict[int, tuple[str, str | None]], decided: np.ndarray) -> None:
        """Exact-URL lists: datatrove's compares whole strings; ours also match without scheme.

        The URLs whose whole, schemeless or slash-stripped form hashes like a list entry are
        looked up exactly (in Python); that is rarely any.
        """
        if not len(self._url_hashes):
            return
        forms = [series]
        if self._schemeless_urls:
            schemeless = series.str.replace(_UP_TO_SCHEME, "")
            forms += [schemeless, schemeless.str.strip_chars_end("/")]
        maybe = np.zeros(len(present), dtype=bool)
        for form in forms:
            hashed = hash_strings(form)
            at = np.minimum(np.searchsorted(self._url_hashes, hashed), len(self._url_hashes) - 1)
            maybe |= self._url_hashes[at] == hashed
        maybe &= ~decided
        dt_urls = self._dt.urls if self._dt is not None else frozenset()
        own_urls = self._own_urls
        schemeless_dt = self._dt is not None and not self.datatrove_compatible
        for position in np.flatnonzero(maybe).tolist():
            url = present[position]
            rule: tuple[str, str | None] | None = None
            if url in dt_urls:
                rule = (f"url_list({DATATROVE_CATEGORY})", url)
            else:
                schemeless_url = url.split("://", 1)[1] if "://" in url else url
                if schemeless_dt and schemeless_url in dt_urls:
                    rule = (f"url_list({DATATROVE_CATEGORY})", schemeless_url)
                elif own_urls:
                    category = own_urls.get(schemeless_url) or own_urls.get(schemeless_url.rstrip("/"))
                    rule = (f"url_list({category})", schemeless_url) if category else None
            if rule is not None:
                removed[rows[position]] = rule
                decided[position] = True

    def _datatrove_candidates(self, url: str) -> tuple[str, str]:
        """What datatrove looks up: the registered domain, then the full host, as tldextract gives them."""
        info = self.extractor(url)
        # datatrove reads `registered_domain`, which tldextract 5.3 renamed (same value).
        registered = getattr(info, "top_domain_under_public_suffix", None)
        if registered is None:
            registered = info.registered_domain
        return registered, info.fqdn

    def _word_rule(self, url: str, host: str, subwords: bool = True) -> tuple[str, str] | None:
        """The first word rule (banned, soft, sub-word) the URL breaks, with what matched.

        datatrove's definitions: URL words are the pieces of ``re.split("[^a-zA-Z0-9]+")``, case
        kept; soft words are counted once each; sub-words are searched in the URL with
        non-alphanumerics removed, lower-cased. On Nordic hosts the exception words do not count
        as words (they still count inside the sub-word string, as for datatrove). ``subwords``:
        False when the bulk sub-word prefilter has ruled them out.
        """
        parts = _URL_WORDS.split(url)
        words = set(parts)
        if self._exceptions and is_nordic_host(host):
            words -= self._exceptions
        banned = self._banned & words
        if banned:
            return "banned_word", ",".join(sorted(banned))
        soft = self._soft & words
        if len(soft) >= self.soft_word_threshold:
            return "soft_banned_words", ",".join(sorted(soft))
        if subwords and self._subword_list:
            normalized = "".join(parts).lower()
            found = [w for w in self._subword_list if w in normalized]
            if found:
                return "banned_subword", ",".join(found)
        return None


_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_LETTER_RANK = {c: rank for rank, c in enumerate("etaoinsrhldcumfpgwybvkxjqz0123456789")}
"""Letters from common to rare in English and Scandinavian text (higher rank: rarer)."""


class SubwordGrams:
    """Flag the URLs whose normalized form may contain a banned sub-word, in bulk (numpy).

    datatrove searches each sub-word in the URL with everything but ASCII letters and digits
    removed, lower-cased. Each sub-word is represented by one of its n-grams (n = 6, or the
    shortest sub-word's length), the one with the rarest letters; a URL whose normalized form
    contains any represented n-gram is flagged. A sub-word occurrence always contains its
    n-gram, so the flagged URLs are a superset, decided exactly afterwards. The n-grams are
    hashed into a 1 Mi-entry table (a collision only flags one more URL).
    """

    TABLE_BITS = 20
    _DROP = 255

    def __init__(self, subwords: Sequence[str]):
        self.code = np.full(256, self._DROP, dtype=np.uint8)
        for number, char in enumerate(_ALNUM):
            self.code[ord(char)] = self.code[ord(char.upper())] = number
        self.n = min(6, *(len(w) for w in subwords))
        self.table = np.zeros(1 << self.TABLE_BITS, dtype=bool)
        for word in subwords:
            grams = [word[i : i + self.n] for i in range(len(word) - self.n + 1)]
            rarest = max(grams, key=lambda gram: sum(_LETTER_RANK.get(c, 40) for c in gram))
            codes = self.code[np.frombuffer(rarest.encode("ascii"), dtype=np.uint8)]
            self.table[self._slots(codes, 1)] = True

    def _slots(self, codes: np.ndarray, count: int) -> np.ndarray:
        """Table slot of the n-gram starting at each of the first ``count`` positions of ``codes``
        (32-bit arithmetic that wraps: a hash, not a number)."""
        value = codes[:count].astype(np.uint32)
        for k in range(1, self.n):
            value *= np.uint32(37)
            value += codes[k : k + count]
        value *= np.uint32(0x9E3779B1)
        return value >> np.uint32(32 - self.TABLE_BITS)

    def suspects(self, urls: Sequence[str]) -> np.ndarray:
        """Positions of the URLs that may contain a sub-word."""
        lengths = np.fromiter(map(len, urls), dtype=np.int64, count=len(urls))
        joined = "".join(urls).encode("utf-8", "surrogatepass")
        if len(joined) != int(lengths.sum()):  # not all ASCII: byte lengths differ from lengths
            lengths = np.fromiter((len(u.encode("utf-8", "surrogatepass")) if not u.isascii() else len(u) for u in urls),
                                  dtype=np.int64, count=len(urls))
        codes = self.code[np.frombuffer(joined, dtype=np.uint8)]
        keep = codes != self._DROP
        kept_before = np.zeros(len(codes) + 1, dtype=np.int64)
        np.cumsum(keep, out=kept_before[1:])
        bounds = np.zeros(len(urls) + 1, dtype=np.int64)
        np.cumsum(lengths, out=bounds[1:])
        starts = kept_before[bounds]  # where each URL starts in the normalized stream
        codes = codes[keep]
        count = len(codes) - self.n + 1
        if count <= 0:
            return np.empty(0, dtype=np.intp)
        at = np.flatnonzero(self.table[self._slots(codes, count)])
        owner = np.searchsorted(starts, at, side="right") - 1
        inside = at + self.n <= starts[owner + 1]  # n-grams that straddle two URLs do not count
        return np.unique(owner[inside])


def _string_series(values: Sequence[str]) -> pl.Series:
    """A polars string Series; a string polars cannot hold (a lone surrogate) becomes U+FFFD there.

    That changes no decision: such a character is neither a URL word character nor allowed in
    a plain host, so those URLs take the exact Python path anyway.
    """
    try:
        return pl.Series(values, dtype=pl.String)
    except Exception:  # polars raises several types for unencodable strings
        return pl.Series([v.encode("utf-8", "replace").decode("utf-8") for v in values], dtype=pl.String)


def _parent_domains_bulk(hosts: pl.Series, owners: np.ndarray) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """``parent_domains`` of many plain hosts at once: (domains, owner of each, depth: 0 = the host)."""
    strings = [hosts]
    owner_parts = [owners]
    depth_parts = [np.zeros(len(owners), dtype=np.int64)]
    dots = hosts.str.count_matches(".", literal=True).to_numpy()
    depth = 0
    while True:
        deeper = dots >= 2  # the parent keeps at least two labels
        if not deeper.any():
            break
        hosts = hosts.filter(pl.Series(deeper)).str.replace(_FIRST_LABEL, "")
        owners, dots = owners[deeper], dots[deeper] - 1
        depth += 1
        strings.append(hosts)
        owner_parts.append(owners)
        depth_parts.append(np.full(len(owners), depth, dtype=np.int64))
    return pl.concat(strings), np.concatenate(owner_parts), np.concatenate(depth_parts)


def _first_hits(hit: np.ndarray, owners: np.ndarray, depths: np.ndarray, decided: np.ndarray) -> list[tuple[int, int]]:
    """``(owner, candidate index)`` of the most specific hit of each undecided owner."""
    index = np.flatnonzero(hit)
    index = index[~decided[owners[index]]]
    if not len(index):
        return []
    index = index[np.lexsort((depths[index], owners[index]))]
    _, first = np.unique(owners[index], return_index=True)
    return [(int(owners[i]), int(i)) for i in index[first]]


# --------------------------------------------------------------------------------------------
# Consent


class ConsentFilter(DocumentFilter):
    """Remove documents whose site opts out of AI training, from a ``robots fetch`` cache.

    The reason names the signal and the date of the snapshot that decided it:
    ``robots.txt(GPTBot)``, ``robots.txt(*)`` (all agents shut out), ``robots.txt(http 403)``
    (401/403 for robots.txt), ``robots.txt(refused)`` (the fetcher's address policy), ``ai.txt``,
    ``tdmrep``; e.g. ``consent:robots.txt(GPTBot)@2026-11-20``. The document's crawl date plays
    no part: a site that opts out today removes pages crawled years ago.

    Consent is *unknown* when no signal refuses and one could not be fetched
    (``robots.txt(http 503)``, ``robots.txt(timeout)``, ``robots.txt(dns)``,
    ``robots.txt(unreachable)``, ``ai.txt(...)``, ``tdmrep(...)``; see ``nordpipe.robots``).

    Args:
        cache: the SQLite cache written by ``nordpipe robots fetch``.
        user_agents: AI user agents checked in robots.txt (default ``robots.AI_USER_AGENTS``).
        scope: ``domain`` (default): a site that disallows an agent at its root loses every
            page, and pages disallowed by narrower rules go too; ``path``: only pages whose
            URL the rules disallow.
        use_ai_txt / use_tdmrep: honour ``/ai.txt`` and ``/.well-known/tdmrep.json`` (default True).
        missing: what to do with documents whose host is not in the cache: ``keep`` (default,
            counted as ``no_snapshot``) or ``remove`` (reason ``consent:no_snapshot``).
        unknown: documents whose consent is unknown: ``keep`` (default; counted as ``unknown``
            and marked ``metadata.nordpipe.consent = "unknown:<signal>@<date>"``) or ``remove``
            (reason ``consent:unknown:<signal>@<date>``).
        require_url: remove documents without a URL (default False: they pass).
    """

    name = "consent"

    def __init__(
        self,
        cache: str | Path,
        user_agents: Sequence[str] | None = None,
        scope: str = "domain",
        use_ai_txt: bool = True,
        use_tdmrep: bool = True,
        missing: str = "keep",
        require_url: bool = False,
        unknown: str = "keep",
    ):
        super().__init__()
        from nordpipe.robots import AI_USER_AGENTS

        if scope not in ("domain", "path"):
            raise ValueError(f"consent scope must be domain or path, not {scope!r}")
        if missing not in ("keep", "remove"):
            raise ValueError(f"missing must be keep or remove, not {missing!r}")
        if unknown not in ("keep", "remove"):
            raise ValueError(f"unknown must be keep or remove, not {unknown!r}")
        self.unknown = unknown
        self.cache = str(cache)
        self.user_agents = list(user_agents) if user_agents else list(AI_USER_AGENTS)
        self.scope = scope
        self.use_ai_txt = use_ai_txt
        self.use_tdmrep = use_tdmrep
        self.missing = missing
        self.require_url = require_url
        self._reader: Any = None

    def filter(self, doc: Document) -> str | None:
        if self._reader is None:
            from nordpipe.robots import ConsentReader

            self._reader = ConsentReader(self.cache, self.user_agents, self.use_ai_txt, self.use_tdmrep)
        url = doc.metadata.get("url")
        if not isinstance(url, str) or not url.strip():
            return "no_url" if self.require_url else None
        decision = self._reader.decide(url, per_path=True, whole_site=self.scope == "domain")
        if decision is None and self._reader.last_missing:
            self.stat_update("no_snapshot")
            return "no_snapshot" if self.missing == "remove" else None
        if decision is None and self._reader.last_unknown:
            self.stat_update("unknown")
            if self.unknown == "remove":
                return f"unknown:{self._reader.last_unknown}"
            nordpipe_meta(doc)["consent"] = f"unknown:{self._reader.last_unknown}"
        return decision


class ConsentUnavailable(ValueError):
    """The consent cache holds only failed fetches for the hosts of the input."""


def check_consent_cache(files: Sequence[str], cache: str | Path) -> None:
    """Refuse (``ConsentUnavailable``, exit 1) when the hosts of ``files`` found in ``cache`` all
    have an unknown robots.txt (no answer ever came: a ``robots fetch`` run offline)."""
    from nordpipe.robots import ConsentReader, input_consent_state, iter_document_urls

    reader = ConsentReader(cache)
    try:
        answered, unknown = input_consent_state(iter_document_urls(files), reader)
    finally:
        reader.conn.close()
    if not answered and unknown:
        raise ConsentUnavailable(
            f"consent cache {cache} holds only failed fetches (no answer: offline, DNS, timeout or 5xx) for the "
            f"{unknown} hosts of the input it knows, so every web document's consent is unknown. Run "
            f"`nordpipe robots fetch INPUT --cache {cache}` again when the sites can be reached (failed entries are "
            "retried), or choose explicitly: --consent-unknown keep (keep and mark them) or --consent-unknown remove")


# --------------------------------------------------------------------------------------------
# The stage


def run_urls(
    input_path: str,
    output_path: str,
    options: Any = None,
    *,
    blocklists: Sequence[str] = (),
    allowlists: Sequence[str] = (),
    categories: Sequence[str] | None = None,
    store: str | None = None,
    project_lists: bool = True,
    datatrove_list: bool = True,
    banned_words: bool = True,
    nordic_exceptions: bool = True,
    datatrove_compatible: bool = False,
    soft_word_threshold: int = 2,
    require_url: bool = False,
    consent_cache: str | None = None,
    user_agents: Sequence[str] | None = None,
    consent_scope: str = "domain",
    ai_txt: bool = True,
    tdmrep: bool = True,
    missing_consent: str = "keep",
    consent_unknown: str | None = None,
) -> dict[str, Any]:
    """The ``filter urls`` stage from INPUT to OUTPUT (``runner.StageRun``): blocklists and
    banned words (``UrlBlocklistFilter``), then, with ``consent_cache``, the sites' AI-training
    consent (``ConsentFilter``). Returns the stats.

    ``consent_unknown`` (``keep``/``remove``; None: ``keep``) is the policy for documents whose
    consent is unknown. Left None, a cache holding only failures for the input's hosts is
    refused (``check_consent_cache``); given explicitly, the run goes on by that policy."""
    from nordpipe.runner import RunOptions, StageRun
    from nordpipe.steps import DocumentReader

    for path in [*blocklists, *allowlists, *([consent_cache] if consent_cache else [])]:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} does not exist")
    url_step = UrlBlocklistFilter(
        datatrove_list=datatrove_list, project_lists=project_lists, categories=list(categories) if categories else None,
        store=store, blocklists=list(blocklists), allowlists=list(allowlists), banned_words=banned_words,
        soft_word_threshold=soft_word_threshold, nordic_exceptions=nordic_exceptions,
        datatrove_compatible=datatrove_compatible, require_url=require_url,
    )
    steps: list[Any] = [url_step]
    parameters: dict[str, object] = {
        name: getattr(url_step, name)
        for name in ("datatrove_list", "project_lists", "categories", "blocklists_dir", "store", "blocklists",
                     "allowlists", "banned_words", "soft_word_threshold", "nordic_exceptions",
                     "datatrove_compatible", "require_url")
    }
    if consent_unknown not in (None, "keep", "remove"):
        raise ValueError(f"consent_unknown must be keep or remove, not {consent_unknown!r}")
    if consent_cache:
        steps.append(ConsentFilter(consent_cache, user_agents=list(user_agents) if user_agents else None,
                                   scope=consent_scope, use_ai_txt=ai_txt, use_tdmrep=tdmrep, missing=missing_consent,
                                   unknown=consent_unknown or "keep"))
        parameters["consent"] = {"cache": str(Path(consent_cache).resolve()), "user_agents": user_agents,
                                 "scope": consent_scope, "ai_txt": ai_txt, "tdmrep": tdmrep, "missing": missing_consent,
                                 "unknown": consent_unknown or "keep"}
    stage_run = StageRun("urls", input_path, output_path, options or RunOptions(), parameters)
    if consent_cache and consent_unknown is None:
        check_consent_cache(stage_run.files, consent_cache)
    with stage_run as run:
        run.execute([DocumentReader(input_path), *steps, run.writer()])
        if run.submitted_only:
            return run.submit()
        run.finishing()
        stats = run.merge_stats()
        if consent_cache:
            consent = stats.get("steps", {}).get("consent", {})
            stats["extra"] = {"consent hosts without snapshot (docs)": consent.get("no_snapshot", 0),
                              f"consent unknown (docs, {consent_unknown or 'keep'})": consent.get("unknown", 0)}
        return run.complete(stats)
