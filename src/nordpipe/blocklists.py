"""Blocklists: datatrove's bundled list, the project's ``blocklists/`` store and user lists.

Three kinds of list feed ``nordpipe filter urls`` (``nordpipe.urls``):

- **datatrove's bundled list** (``url_filterblacklistsv0_3_0.tar.gz`` in the installed
  datatrove package: ~4.5M domains and ~20k URLs, plus the banned-word lists). Held in a
  Python set, as datatrove's ``URLFilter`` does, it costs ~750 MB per worker. We hash every
  domain once (``hash_strings``) into a sorted ``uint64`` array (~36 MB), saved as a ``.npy``
  file in the user cache directory (built on first use, under a lock, moved into place
  atomically) and read by every worker in ~0.1 s.
- **the project's lists**: ``nordpipe/data/blocklists/<category>/*.txt``, package data read
  through ``importlib.resources`` (``shipped_blocklists``), so a wheel install has them as a
  checkout does, and lists that ``nordpipe blocklists update`` downloaded into the local store
  (``<store>/<category>/<name>.txt``). The category is the folder name. The same folder holds
  the Nordic banned-word exceptions and the sources file of ``blocklists update``.
- **user lists** (``--blocklist FILE``) and allowlists (``--allowlist FILE``).

Every list file may mix these line formats (``parse_list_line``): a plain domain
(``example.com``), a hosts-file line (``0.0.0.0 example.com``), an adblock-style rule
(``||example.com^``), or a URL with a path (``example.com/page`` or ``https://...``), which is an
exact-URL entry. ``#`` and ``!`` start comments. A domain entry matches the domain itself and
all its subdomains.

Hashing: polars' 64-bit string hash with fixed seeds (``hash_strings``), because it hashes a
whole batch of strings in one vectorized call (the filter hashes every host and parent domain
of every URL). polars promises stable values only within one polars version, so the cached
index is keyed by the polars version too and rebuilt (~5 s) after an upgrade. Collisions: two
different domains share a hash with probability ~2^-64; over 4.5M list entries and a billion
URLs the chance of one wrong decision is below 1e-3.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import json
import os
import posixpath
import re
import tarfile
import time
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from nordpipe.lazy_imports import LazyModule

np = LazyModule("numpy")  # imported where used: in the workers (nordpipe.lazy_imports)
pl = LazyModule("polars")


_HASH_SEED = 0x6E6F72647069706


def hash_scheme() -> str:
    """Names the hash function of cached indexes (part of their cache key). A function, not a
    constant: reading polars' version imports polars, which only the workers need."""
    return f"plhash1-polars{pl.__version__}"


def hash_strings(values: Sequence[str] | pl.Series) -> np.ndarray:
    """64-bit hashes (``uint64``) of many strings in one vectorized call; the hash of every index.

    Strings polars cannot hold (lone surrogates, only possible from Python-made input) are
    hashed from their ``surrogatepass`` bytes: they equal no list entry, and must not crash.
    """
    if not isinstance(values, pl.Series):
        try:
            values = pl.Series(values, dtype=pl.String)
        except Exception:  # polars raises several types for unencodable strings
            return np.fromiter((_hash_one_safe(v) for v in values), dtype=np.uint64, count=len(values))
    return values.hash(_HASH_SEED).to_numpy()


def _hash_one_safe(value: str) -> int:
    try:
        return int(pl.Series([value], dtype=pl.String).hash(_HASH_SEED)[0])
    except Exception:
        raw = value.encode("utf-8", "surrogatepass")
        return int(pl.Series([raw], dtype=pl.Binary).hash(_HASH_SEED)[0])


def hash64(value: str) -> int:
    """The index hash of one string (``hash_strings`` for many)."""
    return int(hash_strings([value])[0])

DATATROVE_LIST_ARCHIVE = "url_filterblacklistsv0_3_0.tar.gz"


def shipped_blocklists() -> Path:
    """The project's own lists, shipped as package data: ``nordpipe/data/blocklists/``.

    Found with ``importlib.resources`` (the folder inside the installed package, or under
    ``src/`` for an editable install). Raises ``FileNotFoundError`` when the folder is missing
    (a package built without its data files), so lists never vanish silently.
    """
    folder = resources.files("nordpipe") / "data" / "blocklists"
    if not isinstance(folder, Path):  # e.g. a zip import: the lists must be real files
        folder = Path(str(folder))
    if not folder.is_dir():
        raise FileNotFoundError(
            f"nordpipe's shipped blocklists are missing ({folder}): the package was installed without "
            "its data files (nordpipe/data/blocklists); reinstall it"
        )
    return folder


SHIPPED_BLOCKLISTS = Path(str(resources.files("nordpipe") / "data" / "blocklists"))
"""Where the shipped lists are (``shipped_blocklists`` also checks they are there)."""
REPO_BLOCKLISTS = SHIPPED_BLOCKLISTS
"""Old name of ``SHIPPED_BLOCKLISTS`` (the lists used to be read from the checkout's ``blocklists/``)."""
NORDIC_EXCEPTIONS_NAME = "nordic_word_exceptions.txt"
"""The Nordic banned-word exceptions, in the shipped blocklists folder."""
NORDIC_ALLOWLIST_NAME = "nordic_allowlist.txt"
"""Nordic news and public-service domains that no URL rule removes, in the shipped blocklists folder."""

DATATROVE_CATEGORY = "adult"
"""The category of datatrove's bundled domain/URL list, in removal reasons (``blocklist(adult)``).

That list is UT1's ``adult`` category (4.56M domains, 19.6k URLs, snapshot of 2024-12-03 in
datatrove 0.10.1's ``url_filterblacklistsv0_3_0.tar.gz``): of the UT1 gambling, dating and
mixed_adult domains in ``../shared`` only 10 of 32,247, 134 of 6,504 and 17 of 149 are on it.
It is read from the installed datatrove package at run time, not shipped again (123 MB of text)."""

UT1_CATEGORIES: dict[str, tuple[str, ...]] = {
    "gambling": ("gambling",),
    "phishing": ("phishing",),
    "malware": ("malware", "cryptojacking", "stalkerware"),
    "scam": ("fakenews",),
}
"""nordpipe category -> the UT1 categories shipped in it (``<category>/ut1-<ut1 category>.txt.gz``)
and fetched into it by ``blocklists update``. ``adult`` is UT1 ``adult`` through datatrove
(``DATATROVE_CATEGORY``). UT1's other categories (dating, lingerie, mixed_adult, drogue, sect,
warez, hacking, ddos, agressif...) are not nordpipe categories: they name topics, not content
that training data must lose (``mixed_adult`` holds vice.com and tmz.com)."""

CATEGORY_PRECEDENCE = ("phishing", "malware", "scam", "gambling", DATATROVE_CATEGORY)
"""When an entry is on several categories' lists, the reason names the first of these (then the
rest alphabetically): UT1's ``phishing`` and ``malware`` URL lists share 19,046 of their 19,460
and 19,226 entries, and a fake bank login is better reported as phishing than as malware."""
SOURCES_NAME = "sources.toml"
"""The sources of ``nordpipe blocklists update``, in the shipped blocklists folder."""


def shipped_file(name: str) -> Path:
    """A file of the shipped blocklists folder; ``FileNotFoundError`` naming it when missing."""
    path = shipped_blocklists() / name
    if not path.is_file():
        raise FileNotFoundError(f"nordpipe's shipped {name} is missing ({path}); reinstall nordpipe")
    return path

NORDIC_TLDS = ("dk", "no", "se", "fi", "is", "fo", "gl", "ax")
"""Country-code TLDs whose host names get the Nordic banned-word exceptions."""

_COMMENT_PREFIXES = ("#", "!", "[")
_HOSTS_ADDRESSES = {"0.0.0.0", "127.0.0.1", "::", "::1", "::0", "0:0:0:0:0:0:0:0", "255.255.255.255"}
_DOMAIN_RE = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$")
_HOSTS_SKIP = {"localhost", "localhost.localdomain", "local", "broadcasthost", "ip6-localhost", "ip6-loopback"}


def cache_dir() -> Path:
    """Where built indexes live: ``$NORDPIPE_CACHE_DIR``, else the user cache dir (``~/.cache/nordpipe``)."""
    env = os.environ.get("NORDPIPE_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("nordpipe"))


def default_store() -> Path:
    """The local store ``blocklists update`` writes to: ``$NORDPIPE_BLOCKLIST_STORE``, else the
    user data dir (``~/.local/share/nordpipe/blocklists``). Kept out of the source tree so that
    downloaded third-party lists never end up in git."""
    env = os.environ.get("NORDPIPE_BLOCKLIST_STORE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("nordpipe")) / "blocklists"


# --------------------------------------------------------------------------------------------
# Parsing list files


def normalize_domain(value: str) -> str | None:
    """Lower-case, strip a trailing dot and a leading ``*.``/``.``, IDNA-encode; None if invalid."""
    value = value.strip().lower().rstrip(".")
    if value.startswith("*."):
        value = value[2:]
    value = value.lstrip(".")
    if not value:
        return None
    if not value.isascii():
        try:
            value = value.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return value if _DOMAIN_RE.match(value) else None


def parse_list_line(line: str) -> tuple[str, str] | None:
    """One list line -> ``("domain", d)``, ``("url", u)`` or None (comment, blank, unusable).

    Formats: ``example.com``; hosts file ``0.0.0.0 example.com [more.example.com]`` (only the
    first name is taken); adblock ``||example.com^`` (with optional ``$options``); a URL
    ``https://example.com/x`` or ``example.com/x`` (exact-URL entry, stored without scheme).
    """
    line = line.strip()
    if not line or line.startswith(_COMMENT_PREFIXES):
        return None
    line = line.split(" #", 1)[0].strip()
    if line.startswith("||"):
        rule = line[2:].split("$", 1)[0]
        if not rule.endswith("^"):
            return None  # path rules and wildcards are not domain rules
        domain = normalize_domain(rule[:-1])
        return ("domain", domain) if domain else None
    parts = line.split()
    if len(parts) >= 2 and parts[0] in _HOSTS_ADDRESSES:
        name = parts[1]
        if name in _HOSTS_SKIP:
            return None
        domain = normalize_domain(name)
        return ("domain", domain) if domain else None
    if len(parts) != 1:
        return None
    entry = parts[0]
    if "://" in entry:
        entry = entry.split("://", 1)[1]
    host, slash, rest = entry.partition("/")
    domain = normalize_domain(host.split(":", 1)[0])
    if domain is None:
        return None
    if slash and rest:
        return ("url", f"{domain}/{rest}")
    return ("domain", domain)


@dataclass
class ListFile:
    """The entries of one list file."""

    path: str
    category: str
    domains: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    skipped: int = 0


_DOMAIN_BODY = _DOMAIN_RE.pattern[1:-1]
_PLAIN_DOMAIN_LINE = f"^{_DOMAIN_BODY}$"
_PLAIN_URL_LINE = f"^{_DOMAIN_BODY}/[!-~]+$"
"""The two shapes of nearly every line of the UT1 lists, whose parse is the line itself: a
normalized domain (``example.com``) and a normalized host with a path of printable ASCII
without spaces (``example.com/a?b=1``). Matched in bulk (polars); other lines go through
``parse_list_line``. Equal results on all shipped lines (``tests/test_blocklists_ut1.py``)."""


def read_list_file(path: str | Path, category: str) -> ListFile:
    """Parse a list file (``.gz`` allowed); unusable lines are counted in ``skipped``.

    Lines of the two plain shapes (``_PLAIN_DOMAIN_LINE``, ``_PLAIN_URL_LINE``) are taken in
    one vectorized pass, the rest line by line: the 84k entries shipped parse in 0.21 s
    instead of 1.07 s line by line (``benchmarks/results/blocklists.md``, 2 shared cores).
    """
    from nordpipe.documents import open_binary

    result = ListFile(str(path), category)
    with open_binary(str(path)) as raw:
        text = raw.read().decode("utf-8", errors="replace")
    # Universal newlines, as iterating a text file splits them.
    lines = pl.Series(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), dtype=pl.String)
    is_domain = lines.str.contains(_PLAIN_DOMAIN_LINE).fill_null(False)
    is_url = lines.str.contains(_PLAIN_URL_LINE).fill_null(False)
    result.domains = lines.filter(is_domain).to_list()
    result.urls = lines.filter(is_url).to_list()
    for line in lines.filter(~(is_domain | is_url)).to_list():
        stripped = line.strip()
        if not stripped or stripped.startswith(_COMMENT_PREFIXES):
            continue
        parsed = parse_list_line(stripped)
        if parsed is None:
            result.skipped += 1
        elif parsed[0] == "domain":
            result.domains.append(parsed[1])
        else:
            result.urls.append(parsed[1])
    return result


def list_categories(root: str | Path) -> list[str]:
    """The category folders of a list root (``<root>/<category>/``), sorted; [] if it does not exist."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def category_list_files(root: str | Path, categories: Iterable[str] | None = None) -> list[tuple[str, Path]]:
    """``(category, file)`` for every ``<root>/<category>/*.txt[.gz]``, sorted; hidden folders skipped."""
    root = Path(root)
    wanted = set(categories) if categories else None
    found = []
    for name in list_categories(root):
        folder = root / name
        if wanted is not None and folder.name not in wanted:
            continue
        for file in sorted(folder.iterdir()):
            if file.is_file() and file.name.endswith((".txt", ".txt.gz")):
                found.append((folder.name, file))
    return found


def list_name(path: Path) -> str:
    """A list file's name without ``.txt``/``.txt.gz``: ``ut1-gambling.txt.gz`` -> ``ut1-gambling``."""
    name = path.name
    for suffix in (".txt.gz", ".txt"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def ordered_list_files(shipped: str | Path, store: str | Path,
                       categories: Iterable[str] | None = None) -> list[tuple[str, Path]]:
    """The lists ``filter urls`` loads from the shipped folder and the store, in precedence order.

    A store list with the name of a shipped list of the same category (``<store>/gambling/
    ut1-gambling.txt`` and the shipped ``gambling/ut1-gambling.txt.gz``) replaces it: it is the
    newer copy that ``blocklists update`` fetched. Order: categories by ``CATEGORY_PRECEDENCE``,
    then alphabetically; within a category shipped lists, then store lists, by name. An entry
    on several lists keeps the category of the first (``DomainIndex.from_lists``).
    """
    stored = category_list_files(store, categories)
    replaced = {(category, list_name(path)) for category, path in stored}
    shipped_files = [(c, p) for c, p in category_list_files(shipped, categories) if (c, list_name(p)) not in replaced]

    def key(item: tuple[int, tuple[str, Path]]) -> tuple[int, str, int, str]:
        origin, (category, path) = item
        rank = CATEGORY_PRECEDENCE.index(category) if category in CATEGORY_PRECEDENCE else len(CATEGORY_PRECEDENCE)
        return rank, category, origin, path.name

    tagged = [(0, f) for f in shipped_files] + [(1, f) for f in stored]
    return [item for _, item in sorted(tagged, key=key)]


# --------------------------------------------------------------------------------------------
# Domain indexes


class DomainIndex:
    """A set of domains as a sorted array of 64-bit hashes (``hash_strings``), each with a category.

    ``lookup`` takes an array of hashes and returns, for each, the category number or -1.
    Large indexes get a bucket table (the top bits of a hash -> the slice of the array holding
    that bucket): a lookup then reads one table entry and one or two cache lines of the array,
    where a binary search over 4.5M entries takes ~22 dependent cache misses.
    """

    BUCKETED_FROM = 1 << 16
    """Indexes with at least this many entries get a bucket table (~4 entries per bucket)."""

    def __init__(self, hashes: np.ndarray, categories: np.ndarray | None = None, names: list[str] | None = None):
        self.hashes = hashes
        self.categories = categories
        self.names = names or ["blocklist"]
        self._offsets: np.ndarray | None = None
        if len(hashes) >= self.BUCKETED_FROM:
            self._bucket_bits = max(8, min(24, int(len(hashes) // 4).bit_length()))
            self._shift = np.uint64(64 - self._bucket_bits)
            # The hashes are sorted, so bucket b starts where its first possible hash would be
            # inserted. Searched in slices of buckets: shifting and widening all 4.5M hashes of
            # datatrove's list for a bincount held ~88 MB of temporaries at once (the worker's
            # peak while loading); this holds ~4 MB and gives the same table.
            buckets = 1 << self._bucket_bits
            self._offsets = np.empty(buckets + 1, dtype=np.int64 if len(hashes) >= 2**31 else np.int32)
            chunk = 1 << 18
            for start in range(0, buckets, chunk):
                firsts = np.arange(start, min(start + chunk, buckets), dtype=np.uint64) << self._shift
                self._offsets[start:start + len(firsts)] = np.searchsorted(hashes, firsts)
            self._offsets[buckets] = len(hashes)
            # Binary-search steps that cover the largest bucket.
            largest = int(np.diff(self._offsets).max())
            self._steps = [1 << k for k in reversed(range(largest.bit_length()))]

    def __len__(self) -> int:
        return len(self.hashes)

    @classmethod
    def from_lists(cls, lists: Iterable[tuple[str, Iterable[str]]]) -> DomainIndex:
        """Build from ``(category, domains)`` pairs; a domain in several lists keeps the first category."""
        names: list[str] = []
        hash_parts: list[np.ndarray] = []
        cat_parts: list[np.ndarray] = []
        for category, domains in lists:
            if category not in names:
                names.append(category)
            number = names.index(category)
            hashed = hash_strings(list(domains))
            hash_parts.append(hashed)
            cat_parts.append(np.full(len(hashed), number, dtype=np.int16))
        if not hash_parts:
            return cls(np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int16), names)
        hashes = np.concatenate(hash_parts)
        cats = np.concatenate(cat_parts)
        order = np.argsort(hashes, kind="stable")
        hashes, cats = hashes[order], cats[order]
        keep = np.ones(len(hashes), dtype=bool)
        keep[1:] = hashes[1:] != hashes[:-1]
        return cls(hashes[keep], cats[keep], names)

    def positions(self, queries: np.ndarray) -> np.ndarray:
        """Position of each query hash in ``hashes``, -1 where absent."""
        size = len(self.hashes)
        if size == 0 or len(queries) == 0:
            return np.full(len(queries), -1, dtype=np.int64)
        if self._offsets is None:
            pos = np.searchsorted(self.hashes, queries)
        else:
            bucket = (queries >> self._shift).astype(np.intp)
            pos = self._offsets[bucket]
            end = self._offsets[bucket + 1]
            # Branch-free lower bound inside each bucket: advance by 2^k while the entry before
            # the new position is still smaller than the query.
            for step in self._steps:
                ahead = pos + step
                ok = ahead <= end
                ok &= self.hashes[np.minimum(ahead, size) - 1] < queries
                pos = np.where(ok, ahead, pos)
        pos = np.minimum(pos, size - 1)
        return np.where(self.hashes[pos] == queries, pos, -1)

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        """Category number for each query hash, -1 where absent."""
        pos = self.positions(queries)
        found = pos >= 0
        if self.categories is None:
            return np.where(found, 0, -1).astype(np.int16)
        return np.where(found, self.categories[np.maximum(pos, 0)], -1).astype(np.int16)

    def contains(self, domain: str) -> bool:
        return bool(self.lookup(np.array([hash64(domain)], dtype=np.uint64))[0] >= 0)


# --------------------------------------------------------------------------------------------
# datatrove's bundled list


def datatrove_assets() -> Path:
    """The installed datatrove package's ``assets`` folder."""
    from datatrove.utils._import_utils import ASSETS_PATH

    return Path(ASSETS_PATH)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class DatatroveLists:
    """datatrove's bundled lists, as its ``URLFilter`` would load them.

    ``domains``: hashed index of the ``domains`` file. ``urls``: the exact-URL list (a set; it
    is small). The word lists are normalized as datatrove does (non-alphanumerics removed,
    lower-cased; lines starting with ``#`` skipped).
    """

    domains: DomainIndex
    urls: frozenset[str]
    banned_words: frozenset[str]
    banned_subwords: frozenset[str]
    soft_banned_words: frozenset[str]
    index_path: Path


_WORD_NORMALIZER = re.compile(r"[^a-zA-Z0-9]+")


def datatrove_normalize(text: str) -> str:
    """datatrove's URL-word normalization: drop non-alphanumerics, lower-case."""
    return _WORD_NORMALIZER.sub("", text).lower()


def _read_word_list(path: Path) -> frozenset[str]:
    with open(path) as handle:
        return frozenset(datatrove_normalize(line) for line in handle if line[0] != "#")


def load_datatrove_lists(index_dir: Path | None = None) -> DatatroveLists:
    """Load (building on first use) the compact index of datatrove's bundled lists."""
    assets = datatrove_assets()
    archive = assets / DATATROVE_LIST_ARCHIVE
    if not archive.exists():
        raise FileNotFoundError(f"datatrove's URL blocklist is not installed ({archive})")
    stat = archive.stat()
    import datatrove

    version = getattr(datatrove, "__version__", None) or _datatrove_version()
    key = f"datatrove-{version}-{stat.st_size}-{int(stat.st_mtime)}-{hash_scheme()}"
    folder = (index_dir or cache_dir() / "blocklists") / key
    domains_path, urls_path = folder / "domains.u64.npy", folder / "urls.txt"
    if not (domains_path.exists() and urls_path.exists()):
        with _file_lock(folder.parent / f"{key}.lock"):
            if not (domains_path.exists() and urls_path.exists()):  # another worker may have built it
                _build_datatrove_index(archive, folder)
    # Read into memory (36 MB): lookups on a cold memory map pay a page fault per probe,
    # which made them several times slower than the in-memory array.
    hashes = np.load(domains_path)
    with open(urls_path, encoding="utf-8") as handle:
        urls = frozenset(line.rstrip("\n") for line in handle)
    return DatatroveLists(
        domains=DomainIndex(hashes, None, ["datatrove"]),
        urls=urls,
        banned_words=_read_word_list(assets / "banned_words.txt"),
        banned_subwords=_read_word_list(assets / "banned_subwords.txt"),
        soft_banned_words=_read_word_list(assets / "soft_banned_words.txt"),
        index_path=folder,
    )


def _datatrove_version() -> str:
    from importlib.metadata import version

    return version("datatrove")


def _build_datatrove_index(archive: Path, folder: Path) -> None:
    """Hash the ``domains`` member (entries kept exactly as datatrove reads them: stripped,
    lines starting with ``#`` dropped) and copy the ``urls`` member, then move both into place."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp_domains = folder / f".domains.{os.getpid()}.npy"
    tmp_urls = folder / f".urls.{os.getpid()}.txt"
    domains = urls = None
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.name not in ("domains", "urls"):
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            text = io.TextIOWrapper(handle, encoding="utf-8", errors="surrogateescape")
            entries = [line.strip() for line in text if line[0] != "#"]
            if member.name == "domains":
                domains = np.unique(hash_strings(entries))
            else:
                urls = entries
    if domains is None or urls is None:
        raise ValueError(f"{archive} lacks the domains or urls list")
    np.save(tmp_domains, domains)
    with open(tmp_urls, "w", encoding="utf-8", errors="surrogateescape") as out:
        out.writelines(u + "\n" for u in urls)
    os.replace(tmp_urls, folder / "urls.txt")
    os.replace(tmp_domains, folder / "domains.u64.npy")


# --------------------------------------------------------------------------------------------
# Nordic exceptions


def read_word_exceptions(path: str | Path) -> frozenset[str]:
    """Words (one per line, ``#`` comments) that banned-word rules ignore on Nordic hosts."""
    words = set()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            word = line.split("#", 1)[0].strip()
            if word:
                words.add(word)
    return frozenset(words)


# --------------------------------------------------------------------------------------------
# blocklists update


@dataclass
class Source:
    """One downloadable list, from the sources file (shipped: ``nordpipe/data/blocklists/sources.toml``)."""

    name: str
    category: str
    url: str
    description: str = ""
    license: str = ""
    format: str = "list"
    """``list``: the response is a list file (any ``read_list_file`` format, ``.gz`` if the URL
    ends so); ``ut1``: a UT1 category tarball (``<category>.tar.gz`` holding
    ``<category>/domains`` and ``<category>/urls``), stored as one list file."""


SOURCE_FORMATS = ("list", "ut1")


def read_sources(path: str | Path) -> list[Source]:
    """Parse a sources file: TOML with ``[[source]]`` tables (name, category, url, and optionally
    description, license, format)."""
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    sources = []
    for number, item in enumerate(data.get("source", []), start=1):
        missing = [k for k in ("name", "category", "url") if not item.get(k)]
        if missing:
            raise ValueError(f"{path}: source #{number} lacks {', '.join(missing)}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", item["name"]) or not re.fullmatch(r"[A-Za-z0-9_-]+", item["category"]):
            raise ValueError(f"{path}: source #{number}: name and category may hold only letters, digits, _ . -")
        if item.get("format", "list") not in SOURCE_FORMATS:
            raise ValueError(f"{path}: source #{number}: format must be one of {', '.join(SOURCE_FORMATS)}")
        sources.append(Source(item["name"], item["category"], item["url"], item.get("description", ""),
                              item.get("license", ""), item.get("format", "list")))
    return sources


MANIFEST = "manifest.json"


def read_manifest(store: str | Path) -> dict[str, Any]:
    path = Path(store) / MANIFEST
    if not path.exists():
        return {"lists": {}}
    with open(path) as handle:
        return json.load(handle)


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def update_blocklists(
    sources: list[Source],
    store: str | Path,
    timeout: float = 60.0,
    max_bytes: int = 512 * 1024 * 1024,
    only: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Download every source into ``<store>/<category>/<name>.txt`` and record it in
    ``<store>/manifest.json`` (url, sha256, bytes, entries, fetched_at, ETag/Last-Modified).

    Files are written to a temp name and moved into place only once complete and parsable
    (``os.replace``: a reader sees the old list or the new one, never a part); a failed
    download keeps the previous copy. A ``ut1`` source (a UT1 category tarball) is stored as
    one list file: a comment line naming the source, its ``domains``, then its ``urls``.
    Conditional requests (``If-None-Match`` / ``If-Modified-Since``) make an unchanged list
    cost one small response. Returns one result dict per source (``status``: ``updated``,
    ``unchanged`` or ``failed`` with ``error`` and ``unreachable``: True when no answer came
    at all, i.e. offline, DNS failure, connection refused or timeout).
    """
    import httpx

    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    wanted = set(only) if only else None
    results = []
    with _file_lock(store / ".lock"), httpx.Client(timeout=timeout, follow_redirects=True,
                                                   headers={"User-Agent": "nordpipe-blocklists/0.1"}) as client:
        manifest = read_manifest(store)
        lists = manifest.setdefault("lists", {})
        for source in sources:
            if wanted is not None and source.name not in wanted and source.category not in wanted:
                continue
            key = f"{source.category}/{source.name}"
            previous = lists.get(key, {})
            target = store / source.category / f"{source.name}.txt"
            result: dict[str, Any] = {"list": key, "url": source.url}
            headers = {}
            if target.exists() and previous.get("url") == source.url:
                if previous.get("etag"):
                    headers["If-None-Match"] = previous["etag"]
                if previous.get("last_modified"):
                    headers["If-Modified-Since"] = previous["last_modified"]
            now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            try:
                entry = _download(client, source, target, headers, max_bytes)
            except (httpx.HTTPError, OSError, ValueError, tarfile.TarError) as err:
                # No answer at all (offline, DNS, refused, timeout) vs a bad answer (404, not a list).
                result.update(status="failed", error=f"{type(err).__name__}: {err}",
                              unreachable=isinstance(err, httpx.TransportError))
                lists[key] = {**previous, "url": source.url, "last_error": result["error"], "last_attempt": now}
                results.append(result)
                continue
            if entry is None:
                result["status"] = "unchanged"
                lists[key] = {**previous, "checked_at": now, "last_attempt": now}
                lists[key].pop("last_error", None)
            else:
                result["status"] = "updated"
                lists[key] = {**entry, "category": source.category, "url": source.url, "fetched_at": now,
                              "checked_at": now, "description": source.description, "license": source.license}
            result.update({k: lists[key].get(k) for k in ("sha256", "entries", "bytes")})
            results.append(result)
        _write_json_atomic(store / MANIFEST, manifest)
    return results


def _download(client: Any, source: Source, target: Path, headers: dict[str, str], max_bytes: int) -> dict[str, Any] | None:
    """Fetch one list to ``target`` atomically; None if the server says it is unchanged (304)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    tmp_list = target.with_name(f".{target.name}.{os.getpid()}.list")
    digest = hashlib.sha256()
    size = 0
    started = time.monotonic()
    try:
        with client.stream("GET", source.url, headers=headers) as response:
            if response.status_code == 304:
                return None
            response.raise_for_status()
            with open(tmp, "wb") as out:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise ValueError(f"larger than {max_bytes:,} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            etag = response.headers.get("etag")
            last_modified = response.headers.get("last-modified")
        if source.format == "ut1":
            _ut1_tarball_to_list(tmp, tmp_list, source, 8 * max_bytes)
            os.replace(tmp_list, tmp)
        parsed = read_list_file(tmp, source.category)
        entries = len(parsed.domains) + len(parsed.urls)
        if entries == 0:
            raise ValueError("no usable entries (not a domain, hosts or adblock list?)")
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, tmp_list):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return {
        "file": str(target.relative_to(target.parent.parent)),
        "sha256": digest.hexdigest(),
        "bytes": size,
        "entries": entries,
        "skipped_lines": parsed.skipped,
        "etag": etag,
        "last_modified": last_modified,
        "format": source.format,
        "seconds": round(time.monotonic() - started, 3),
    }


UT1_MEMBERS = ("domains", "urls")
"""The members of a UT1 category tarball that are lists (others: ``usage``, ``expressions``)."""


def _ut1_tarball_to_list(tarball: Path, target: Path, source: Source, max_bytes: int) -> None:
    """Write the ``domains`` then ``urls`` members of a UT1 category tarball (``<category>/domains``,
    gzip, bzip2 or plain tar) into one list file. Members are read, never extracted, so names
    like ``../x`` cannot write outside the store; links inside the archive are followed (UT1
    has shipped categories as links to others). More than ``max_bytes`` of list text is an error
    (a decompression bomb), and so is a tarball without a list member."""
    found: dict[str, list[tarfile.TarInfo]] = {kind: [] for kind in UT1_MEMBERS}
    with tarfile.open(tarball, "r:*") as tar, open(target, "wb") as out:
        files: set[str] = set()
        for member in tar:
            kind = member.name.rstrip("/").rsplit("/", 1)[-1]
            if kind in found and (member.isfile() or member.islnk() or member.issym()):
                found[kind].append(member)
                if member.isfile():
                    files.add(posixpath.normpath(member.name))
        # A link to a list member of the same tarball repeats it: read the member once.
        for kind, members in found.items():
            found[kind] = [m for m in members if m.isfile() or _link_target(m) not in files]
        if not any(found.values()):
            raise ValueError(f"{source.url}: no {' or '.join(UT1_MEMBERS)} member in the tarball (not a UT1 category?)")
        out.write(f"# UT1 {source.name} ({source.url}), category {source.category}; licence CC BY-SA 4.0\n".encode())
        written = 0
        for kind in UT1_MEMBERS:
            for member in found[kind]:
                try:
                    handle = tar.extractfile(member)
                except KeyError as err:  # a link to a member the tarball lacks
                    raise ValueError(f"{source.url}: {member.name} links to a missing member") from err
                if handle is None:
                    continue
                out.write(f"# {member.name}\n".encode())
                last = b"\n"
                while chunk := handle.read(1 << 20):
                    written += len(chunk)
                    if written > max_bytes:
                        raise ValueError(f"{source.url}: the tarball's lists are larger than {max_bytes:,} bytes")
                    out.write(chunk)
                    last = chunk[-1:]
                if last != b"\n":
                    out.write(b"\n")


def _link_target(member: tarfile.TarInfo) -> str:
    """The archive path a hard or symbolic link member points to."""
    if member.islnk():
        return posixpath.normpath(member.linkname)
    return posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))
