"""Consent signals: fetch robots.txt, ai.txt and tdmrep.json into a SQLite cache, and decide.

``nordpipe robots fetch INPUT --cache FILE`` collects the hosts of every ``metadata.url`` in
INPUT and fetches, for each, ``/robots.txt``, ``/ai.txt`` and ``/.well-known/tdmrep.json``
concurrently (httpx, asyncio) into a SQLite file, with fetch time, HTTP status, final URL,
error and body. ``ConsentReader`` (used by ``urls.ConsentFilter``) turns the cache into
decisions: *allowed*, *refused* (the site says no) or *unknown* (no answer came).

Every fetch ends in one of three kinds (``outcome_kind``):

- **answer**: the site answered (2xx, 4xx other than 429, a redirect loop). Fresh for
  ``max_age`` (default 24 h, RFC 9309 §2.4), so a daily cron run costs only what went stale.
- **unknown**: no answer (DNS failure, connection refused, timeout, 5xx, 429, offline), after
  ``retries`` retries with exponential backoff within the run. Never fresh: the entry gets a
  ``retry_at`` ``retry_after`` (10 min) later, doubling with each consecutive failure (at most
  ``max_age``), and the next ``robots fetch`` after it tries again. When the cache already
  holds an answer for that file, the answer stays in use (RFC 9309 §2.4: a cached copy may be
  used beyond 24 hours while the file is unreachable) and only the failure is recorded
  (``failures``, ``last_error``, ``attempted_at``, ``retry_at``).
- **policy**: the fetcher would not fetch (a non-public address, a non-http scheme, an invalid
  URL, see Security): deterministic, cached like an answer; robots.txt's reason is
  ``robots.txt(refused)`` and the site's documents are removed, as nothing can be checked.

RFC 9309 (REFERENCE.md §6) and what nordpipe makes of it:

- 2xx: the body is parsed (protego); only the first ``MAX_BODY_BYTES`` (500 KiB) are read;
  invalid UTF-8 is replaced, not fatal. Rules shutting an AI agent out mean *refused*.
- 401, 403: *refused* (``robots.txt(http 403)``). RFC 9309 §2.3.1.3 calls every 4xx
  "unavailable", after which a crawler MAY access anything; MAY permits, it does not oblige.
  An access-denied answer to the consent check itself is a site turning bots away (AI-bot
  firewalls answer 403), and training data wants a yes, so nordpipe reads it as a no.
- other 4xx (404, 410, ...): "unavailable": no robots.txt, everything *allowed* (§2.3.1.3).
- 5xx, 429, timeouts, DNS and connection failures: §2.3.1.4 "unreachable": a crawler MUST
  assume complete disallow *for crawling now*. nordpipe does not crawl: it judges text that was
  crawled already, and an outage says nothing about the site's wishes, so the consent is
  *unknown* (``robots.txt(http 503)``, ``robots.txt(timeout)``, ``robots.txt(dns)``,
  ``robots.txt(unreachable)``) and ``filter urls --consent-unknown keep|remove`` decides.
  429 ("too many requests") is a 4xx but means "later", so it is treated like a 5xx, as
  Google documents for its crawler.
- redirects: up to ``MAX_REDIRECTS`` (5) are followed, across hosts; more (a loop) means the
  file is unavailable, like a 4xx (allowed), as Google documents for its crawler.
- ai.txt (robots.txt syntax) and tdmrep.json opt out only when fetched with a 2xx: a missing
  (4xx) or broken file expresses no opt-out; a 5xx/timeout/network failure makes the consent
  *unknown* unless another signal already refuses.

Security: the hosts come from untrusted data. Every connection, including each redirect hop,
is resolved by the fetcher itself and refused when any address it would use is not public
(loopback, private, link-local, cloud metadata, CGNAT, multicast, reserved...), unless
``allow_private`` (or an ``allow_networks`` entry) says otherwise; only http and https are
fetched; environment proxies are ignored (a proxy would resolve names on our behalf).
Connections go to the checked address itself, so a DNS answer cannot change between check and
use. ``resolve`` maps host names to addresses (like curl's ``--resolve``; ``*.example`` matches
subdomains): tests and benchmarks point many virtual hosts at one local server with it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import random
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

AI_USER_AGENTS = (
    "CCBot",
    "GPTBot",
    "ChatGPT-User",
    "Google-Extended",
    "anthropic-ai",
    "ClaudeBot",
    "PerplexityBot",
    "Bytespider",
    "Applebot-Extended",
    "meta-externalagent",
    "cohere-ai",
    "Amazonbot",
    "Diffbot",
    "Omgilibot",
)
"""AI crawler user agents checked by default (REFERENCE.md §6)."""

RESOURCES = {"robots.txt": "/robots.txt", "ai.txt": "/ai.txt", "tdmrep.json": "/.well-known/tdmrep.json"}
MAX_BODY_BYTES = 500 * 1024
MAX_REDIRECTS = 5
FETCHER_USER_AGENT = "nordpipe-robots/0.1 (consent check for a training-data pipeline)"
_GENERIC_AGENT = "nordpipe-any-agent"  # an agent no robots.txt names: tells `*` rules apart

SCHEMA = """
CREATE TABLE IF NOT EXISTS fetches (
    host        TEXT NOT NULL,     -- lower-case host name, no port
    resource    TEXT NOT NULL,     -- robots.txt | ai.txt | tdmrep.json
    url         TEXT NOT NULL,     -- what was requested first
    final_url   TEXT,              -- after redirects
    status      INTEGER,           -- HTTP status of the final response; NULL when none came
    error       TEXT,              -- why there was no response (refused: ..., timeout, ...)
    fetched_at  REAL NOT NULL,     -- Unix time of the fetch
    elapsed     REAL,
    redirects   INTEGER,
    truncated   INTEGER,           -- 1 when the body was cut at 500 KiB
    body        BLOB,
    -- failures since the last answer; an answer resets them (added by schema 2)
    failures     INTEGER NOT NULL DEFAULT 0,
    retry_at     REAL,             -- unknown outcome: not fetched again before this Unix time
    last_error   TEXT,             -- the last failure (http 503, timeout: ..., unreachable: ...)
    attempted_at REAL,             -- Unix time of the last attempt, answered or not
    PRIMARY KEY (host, resource)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


_FAILURE_COLUMNS = {"failures": "INTEGER NOT NULL DEFAULT 0", "retry_at": "REAL", "last_error": "TEXT",
                    "attempted_at": "REAL"}
_ROW_COLUMNS = ("host", "resource", "url", "final_url", "status", "error", "fetched_at", "elapsed", "redirects",
                "truncated", "body", *_FAILURE_COLUMNS)


def outcome_kind(status: int | None, error: str | None) -> str:
    """``answer`` (the site answered), ``unknown`` (no answer came) or ``policy`` (not fetched by
    the fetcher's own rules); see the module doc."""
    if status is not None:
        return "unknown" if status >= 500 or status == 429 else "answer"
    if error and error.startswith("too many redirects"):
        return "answer"
    if error and error.startswith(("refused", "invalid")):
        return "policy"
    return "unknown"


def unknown_label(status: int | None, error: str | None) -> str:
    """Short reason of an unknown outcome: ``http 503``, ``timeout``, ``dns``, ``unreachable``."""
    if status is not None:
        return f"http {status}"
    if error and error.startswith("timeout"):
        return "timeout"
    if error and "cannot resolve" in error:
        return "dns"
    return "unreachable"


class RefusedAddress(Exception):
    """A host resolved to an address the fetcher may not connect to."""


# --------------------------------------------------------------------------------------------
# Address policy and resolution


def parse_resolve(entries: Iterable[str]) -> dict[str, str]:
    """``["a.test:127.0.0.1", "*.bench.test:127.0.0.1"]`` -> mapping (IPv6 addresses allowed)."""
    mapping = {}
    for entry in entries:
        host, sep, address = entry.partition(":")
        if not sep or not host or not address:
            raise ValueError(f"--resolve expects HOST:ADDRESS, got {entry!r}")
        ipaddress.ip_address(address.strip("[]"))  # raises ValueError for a non-address
        mapping[host.lower()] = address.strip("[]")
    return mapping


@dataclass
class AddressPolicy:
    """Which addresses the fetcher may connect to: public ones, plus what is explicitly allowed."""

    allow_private: bool = False
    allow_networks: Sequence[str] = ()

    def __post_init__(self) -> None:
        self._networks = [ipaddress.ip_network(n, strict=False) for n in self.allow_networks]

    def refusal(self, address: str) -> str | None:
        """Why ``address`` is refused, or None if allowed."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if self.allow_private or any(ip in net for net in self._networks):
            return None
        mapped = getattr(ip, "ipv4_mapped", None) or getattr(ip, "sixtofour", None)
        for candidate in (ip, mapped):
            if candidate is None:
                continue
            if candidate.is_loopback:
                return f"{address} is a loopback address"
            if candidate.is_link_local:
                return f"{address} is link-local (cloud metadata lives here)"
            if candidate.is_private:
                return f"{address} is a private address"
            if not candidate.is_global or candidate.is_multicast or candidate.is_reserved:
                return f"{address} is not a public address"
        return None


class Resolver:
    """Host name -> addresses, with ``--resolve`` overrides and a per-run cache."""

    def __init__(self, overrides: dict[str, str] | None = None):
        self.overrides = overrides or {}
        self._cache: dict[tuple[str, int], list[str]] = {}

    def override(self, host: str) -> str | None:
        host = host.lower()
        if host in self.overrides:
            return self.overrides[host]
        for pattern, address in self.overrides.items():
            if pattern.startswith("*.") and host.endswith(pattern[1:]):
                return address
        return None

    async def resolve(self, host: str, port: int) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            pass
        fixed = self.override(host)
        if fixed is not None:
            return [fixed]
        key = (host.lower(), port)
        if key not in self._cache:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            self._cache[key] = list(dict.fromkeys(info[4][0] for info in infos))
        return self._cache[key]


def guarded_transport(policy: AddressPolicy, resolver: Resolver, max_connections: int) -> Any:
    """An httpx transport whose every TCP connection goes through ``policy`` and ``resolver``.

    httpx has no public hook for name resolution; httpcore (its engine) takes a network
    backend, so we build httpx's own transport and give its connection pool a backend that
    resolves, checks and connects to the checked address. TLS still verifies the host name.
    """
    import httpcore
    import httpx

    class GuardedBackend(httpcore.AsyncNetworkBackend):
        def __init__(self) -> None:
            self.inner = httpcore.AnyIOBackend()

        async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                              local_address: str | None = None, socket_options: Any = None) -> Any:
            try:
                addresses = await resolver.resolve(host, port)
            except OSError as err:
                raise httpcore.ConnectError(f"cannot resolve {host}: {err}") from err
            refusals = [policy.refusal(a) for a in addresses]
            allowed = [a for a, why in zip(addresses, refusals, strict=True) if why is None]
            if not allowed:
                raise RefusedAddress(f"{host}: {refusals[0]}")
            last: Exception | None = None
            for address in allowed:
                try:
                    return await self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                        socket_options=socket_options)
                except httpcore.ConnectError as err:
                    last = err
            assert last is not None
            raise last

        async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
            raise RefusedAddress("unix sockets are never fetched")

        async def sleep(self, seconds: float) -> None:
            await self.inner.sleep(seconds)

    transport = httpx.AsyncHTTPTransport(trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(  # see docstring: the only way to set the backend
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=5.0,
        network_backend=GuardedBackend(),
    )
    return transport


# --------------------------------------------------------------------------------------------
# The cache


def open_cache(path: str | Path, readonly: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) the SQLite cache. WAL mode lets filters read during a fetch."""
    if readonly:
        if not Path(path).exists():
            raise FileNotFoundError(f"consent cache {path} does not exist (run nordpipe robots fetch first)")
        conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=60)
        return conn
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    # schema 1 (before unknown outcomes were told apart) lacks the failure columns: add them;
    # its unknown rows have no retry_at, so the next fetch retries them
    present = {row[1] for row in conn.execute("PRAGMA table_info(fetches)")}
    for column, declaration in _FAILURE_COLUMNS.items():
        if column not in present:
            conn.execute(f"ALTER TABLE fetches ADD COLUMN {column} {declaration}")
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', '2')")
    conn.commit()
    return conn


@dataclass
class FetchResult:
    host: str
    resource: str
    url: str
    final_url: str | None = None
    status: int | None = None
    error: str | None = None
    fetched_at: float = 0.0
    elapsed: float = 0.0
    redirects: int = 0
    truncated: bool = False
    body: bytes | None = None
    attempts: int = 0
    requests: int = 0
    retryable: bool = False

    @property
    def kind(self) -> str:
        return outcome_kind(self.status, self.error)

    def row(self, failures: int = 0, retry_at: float | None = None, last_error: str | None = None) -> tuple[Any, ...]:
        return (self.host, self.resource, self.url, self.final_url, self.status, self.error, self.fetched_at,
                round(self.elapsed, 4), self.redirects, int(self.truncated), self.body, failures, retry_at,
                last_error, self.fetched_at)

    def failure_text(self) -> str:
        return f"http {self.status}" if self.status is not None else (self.error or "unreachable")


# --------------------------------------------------------------------------------------------
# Collecting hosts


def host_and_origin(url: str) -> tuple[str, str] | None:
    """``https://www.Example.dk:8443/a`` -> ``("www.example.dk", "https://www.example.dk:8443")``."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    host = host.rstrip(".").lower()
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return host, f"{parts.scheme}://{netloc}"


def iter_input_urls(path: str) -> Iterator[str]:
    """URLs from a documents input (``metadata.url``) or a ``.txt``/``.txt.gz`` file of URLs."""
    from nordpipe.documents import open_binary
    from nordpipe.steps import list_document_files

    if path.endswith((".txt", ".txt.gz")):
        with open_binary(path) as handle:
            for line in handle:
                text = line.decode("utf-8", "replace").strip()
                if text and not text.startswith("#"):
                    yield text if "://" in text else f"https://{text}/"
        return
    yield from iter_document_urls(list_document_files(path))


def iter_document_urls(files: Iterable[str]) -> Iterator[str]:
    """``metadata.url`` of every record of these document files."""
    from nordpipe.documents import iter_document_lines, iter_records

    for file in files:
        records = ((r.record for r in iter_document_lines(file) if r.error is None) if not file.endswith(".parquet")
                   else (record for _, record in iter_records(file)))
        for record in records:
            metadata = record.get("metadata") if isinstance(record, dict) else None
            url = metadata.get("url") if isinstance(metadata, dict) else None
            if isinstance(url, str) and url:
                yield url


def collect_origins(urls: Iterable[str]) -> tuple[dict[str, str], int]:
    """host -> origin (the first URL seen for a host decides scheme and port); and bad URLs."""
    origins: dict[str, str] = {}
    bad = 0
    for url in urls:
        parsed = host_and_origin(url)
        if parsed is None:
            bad += 1
        elif parsed[0] not in origins:
            origins[parsed[0]] = parsed[1]
    return origins, bad


# --------------------------------------------------------------------------------------------
# Fetching


@dataclass
class FetchOptions:
    """How ``robots fetch`` behaves; every field has a CLI flag."""

    max_age: float = 24 * 3600
    """Seconds an entry stays fresh (RFC 9309: cache no longer than 24 hours in general)."""
    concurrency: int = 64
    """Requests in flight at once, over all hosts."""
    per_host: int = 1
    """Requests in flight at once to one host."""
    timeout: float = 10.0
    """Seconds one attempt may take, connection to last byte."""
    retries: int = 2
    """Extra attempts after a timeout, connection failure, 5xx or 429."""
    backoff: float = 1.0
    """First retry waits about this many seconds; each further retry doubles it."""
    retry_after: float = 600.0
    """An unknown outcome may be fetched again by a later run after this many seconds, doubled
    with each consecutive failure, at most ``max_age``."""
    resources: Sequence[str] = tuple(RESOURCES)
    allow_private: bool = False
    allow_networks: Sequence[str] = ()
    resolve: dict[str, str] = field(default_factory=dict)
    user_agent: str = FETCHER_USER_AGENT


@dataclass
class FetchSummary:
    """What a ``robots fetch`` did. ``attempted`` files were due; each ended ``fetched`` (an answer
    came), ``failed`` (no answer: unknown, retried by a later run) or ``refused`` (address or
    scheme policy). ``kept_previous``: failed files whose earlier answer stays in use."""

    hosts: int = 0
    bad_urls: int = 0
    fresh: int = 0
    waiting: int = 0
    attempted: int = 0
    fetched: int = 0
    failed: int = 0
    refused: int = 0
    kept_previous: int = 0
    requests: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def nothing_fetched(self) -> bool:
        """Files were due and not one answer came (offline, every site down, all refused)."""
        return self.attempted > 0 and self.fetched == 0

    def as_dict(self) -> dict[str, Any]:
        rate = self.attempted / self.seconds if self.seconds else 0.0
        return {"hosts": self.hosts, "bad_urls": self.bad_urls, "fresh_skipped": self.fresh,
                "retry_waiting": self.waiting, "attempted": self.attempted, "fetched": self.fetched,
                "failed": self.failed, "refused": self.refused, "kept_previous": self.kept_previous,
                "requests": self.requests, "seconds": round(self.seconds, 3),
                "fetches_per_second": round(rate, 1), "outcomes": dict(sorted(self.statuses.items()))}

    def line(self, retry_after: float) -> str:
        """One human summary line."""
        text = (f"{self.attempted} files due for {self.hosts} hosts: {self.fetched} fetched (answered), "
                f"{self.failed} failed (no answer: consent unknown), {self.refused} refused by address policy; "
                f"{self.fresh} fresh, {self.waiting} waiting to be retried")
        if self.failed:
            text += (f"; failed files are not cached as fresh: the next robots fetch after {retry_after:g} s "
                     f"(doubling per failure) retries them")
            if self.kept_previous:
                text += f", {self.kept_previous} keep their earlier answer meanwhile"
        return text


def fetch_consent(origins: dict[str, str], cache: str | Path, options: FetchOptions | None = None,
                  now: float | None = None) -> FetchSummary:
    """Fetch every stale (host, resource) of ``origins`` into ``cache``; see the module doc."""
    options = options or FetchOptions()
    return asyncio.run(_fetch_all(origins, Path(cache), options, time.time() if now is None else now))


def _outcome(result: FetchResult) -> str:
    if result.status is not None:
        return f"{result.status // 100}xx"
    return (result.error or "error").split(":", 1)[0]


async def _fetch_all(origins: dict[str, str], cache: Path, options: FetchOptions, now: float) -> FetchSummary:
    import httpx

    summary = FetchSummary(hosts=len(origins))
    conn = open_cache(cache)
    skip: dict[tuple[str, str], bool] = {}  # not due: True fresh answer, False waiting for retry_at
    previous: dict[tuple[str, str], tuple[bool, int]] = {}  # due: (holds an answer, failures so far)
    cutoff = now - options.max_age
    for host, resource, status, error, fetched_at, failures, retry_at in conn.execute(
            "SELECT host, resource, status, error, fetched_at, failures, retry_at FROM fetches"):
        if host not in origins:
            continue
        key = (host, resource)
        kind = outcome_kind(status, error)
        if failures:
            if retry_at is not None and retry_at > now:
                skip[key] = False
                continue
        elif kind != "unknown" and fetched_at >= cutoff:
            skip[key] = True
            continue
        previous[key] = (kind != "unknown", failures or 0)
    jobs = [(host, origin, resource) for host, origin in origins.items() for resource in options.resources
            if (host, resource) not in skip]
    summary.attempted = len(jobs)
    wanted = [skip[(h, r)] for h in origins for r in options.resources if (h, r) in skip]
    summary.fresh = sum(wanted)
    summary.waiting = len(wanted) - summary.fresh
    started = time.monotonic()
    policy = AddressPolicy(options.allow_private, options.allow_networks)
    resolver = Resolver(options.resolve)
    transport = guarded_transport(policy, resolver, options.concurrency)
    host_limits: dict[str, asyncio.Semaphore] = {}
    host_users: dict[str, int] = {}
    pending: list[FetchResult] = []

    insert = (f"INSERT OR REPLACE INTO fetches ({', '.join(_ROW_COLUMNS)}) "
              f"VALUES ({', '.join('?' * len(_ROW_COLUMNS))})")
    note_failure = ("UPDATE fetches SET failures = ?, retry_at = ?, last_error = ?, attempted_at = ? "
                    "WHERE host = ? AND resource = ?")

    def flush() -> None:
        rows, notes = [], []
        for result in pending:
            if result.kind != "unknown":
                rows.append(result.row())
                continue
            had_answer, failures = previous.get((result.host, result.resource), (False, 0))
            failures += 1
            wait = min(options.retry_after * 2 ** min(failures - 1, 30), options.max_age)
            text = result.failure_text()[:500]
            if had_answer:  # RFC 9309 §2.4: the cached answer stays in use while unreachable
                notes.append((failures, result.fetched_at + wait, text, result.fetched_at, result.host, result.resource))
            else:
                rows.append(result.row(failures, result.fetched_at + wait, text))
        conn.executemany(insert, rows)
        conn.executemany(note_failure, notes)
        conn.commit()
        pending.clear()

    # Hosts interleave so that one host's three files are not fetched back to back.
    jobs.sort(key=lambda j: (options.resources.index(j[2]), j[0]))
    queue = iter(jobs)

    async with httpx.AsyncClient(transport=transport, timeout=options.timeout, follow_redirects=False,
                                 headers={"User-Agent": options.user_agent}, trust_env=False) as client:

        async def worker() -> None:
            # `concurrency` workers share one job iterator: memory stays flat for millions of hosts.
            for host, origin, resource in queue:
                host_users[host] = host_users.get(host, 0) + 1
                host_limit = host_limits.setdefault(host, asyncio.Semaphore(options.per_host))
                try:
                    async with host_limit:
                        result = await _fetch_with_retries(client, host, origin + RESOURCES[resource], resource, options)
                finally:
                    host_users[host] -= 1
                    if not host_users[host]:
                        del host_users[host], host_limits[host]
                kind = result.kind
                if kind == "answer":
                    summary.fetched += 1
                elif kind == "policy":
                    summary.refused += 1
                else:
                    summary.failed += 1
                    summary.kept_previous += previous.get((host, resource), (False, 0))[0]
                summary.requests += result.requests
                key = f"{resource} {_outcome(result)}"
                summary.statuses[key] = summary.statuses.get(key, 0) + 1
                pending.append(result)
                if len(pending) >= 256:
                    flush()

        try:
            await asyncio.gather(*(worker() for _ in range(min(options.concurrency, max(1, len(jobs))))))
        finally:
            flush()
            conn.close()
    summary.seconds = time.monotonic() - started
    return summary


async def _fetch_with_retries(client: Any, host: str, url: str, resource: str, options: FetchOptions) -> FetchResult:
    requests = 0
    attempt = 0
    while True:
        result = await _fetch_once(client, host, url, resource, options)
        requests += result.requests
        attempt += 1
        if not result.retryable or attempt > options.retries:
            result.attempts, result.requests = attempt, requests
            return result
        # Exponential backoff with jitter, so that many hosts behind one server do not retry in step.
        await asyncio.sleep(options.backoff * 2 ** (attempt - 1) * (0.5 + random.random()))


async def _fetch_once(client: Any, host: str, url: str, resource: str, options: FetchOptions) -> FetchResult:
    import httpx

    result = FetchResult(host=host, resource=resource, url=url, fetched_at=time.time())
    started = time.monotonic()
    current = url
    try:
        async with asyncio.timeout(options.timeout):
            while True:
                scheme = urlsplit(current).scheme.lower()
                if scheme not in ("http", "https"):
                    result.error = f"refused: scheme {scheme or '(none)'} in {current[:200]}"
                    break
                result.requests += 1
                async with client.stream("GET", current) as response:
                    location = response.headers.get("location")
                    if response.status_code in (301, 302, 303, 307, 308) and location:
                        if result.redirects >= MAX_REDIRECTS:
                            result.error = f"too many redirects: more than {MAX_REDIRECTS}"
                            result.final_url = current
                            break
                        result.redirects += 1
                        current = urljoin(current, location)
                        continue
                    result.status = response.status_code
                    result.final_url = current
                    if 200 <= response.status_code < 300:
                        body = bytearray()
                        async for chunk in response.aiter_bytes():
                            body += chunk
                            if len(body) >= MAX_BODY_BYTES:
                                result.truncated = len(body) > MAX_BODY_BYTES or not response.is_stream_consumed
                                del body[MAX_BODY_BYTES:]
                                break
                        result.body = bytes(body)
                    result.retryable = response.status_code >= 500 or response.status_code == 429
                    break
    except RefusedAddress as err:
        result.error = f"refused: {err}"
    except TimeoutError:
        result.error = f"timeout: no complete answer within {options.timeout:g} s"
        result.retryable = True
    except httpx.TimeoutException as err:
        result.error = f"timeout: {type(err).__name__}"
        result.retryable = True
    except (httpx.TransportError, OSError) as err:
        result.error = f"unreachable: {type(err).__name__}: {err}"[:500]
        result.retryable = True
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as err:
        result.error = f"invalid: {err}"[:500]
    result.elapsed = time.monotonic() - started
    return result


# --------------------------------------------------------------------------------------------
# Decisions


def decode_body(body: bytes | None) -> str:
    """robots.txt is UTF-8 (RFC 9309); broken bytes are replaced, a BOM dropped."""
    return (body or b"").decode("utf-8", errors="replace").lstrip("\ufeff")


def robots_blocked(parser: Any, url: str, agents: Sequence[str]) -> str | None:
    """The agent (or ``*``) that ``url`` is disallowed for, or None."""
    blocked = [agent for agent in agents if not parser.can_fetch(url, agent)]
    if not blocked:
        return None
    if len(blocked) == len(agents) and not parser.can_fetch(url, _GENERIC_AGENT):
        return "*"
    return blocked[0]


def tdm_reserved(entries: Any, path: str) -> bool:
    """TDMRep (``/.well-known/tdmrep.json``): is text-and-data mining reserved for ``path``?

    The file is a JSON array of rules ``{"location": pattern, "tdm-reservation": 0|1, ...}``;
    locations use robots.txt path patterns (``*`` wildcard, ``$`` end anchor). The most specific
    (longest) matching location decides, as in robots.txt.
    """
    from protego import Protego

    if not isinstance(entries, list):
        return False
    best: tuple[int, bool] | None = None
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        location = entry.get("location")
        if not isinstance(location, str) or not location:
            continue
        reserved = str(entry.get("tdm-reservation")) == "1"
        pattern = location if location.startswith(("/", "*")) else "/" + location
        rules = Protego.parse(f"User-agent: *\nDisallow: {pattern}\n")
        if not rules.can_fetch(path, "*") and (best is None or len(pattern) > best[0]):
            best = (len(pattern), reserved)
    return bool(best and best[1])


class ConsentReader:
    """Decisions from a ``robots fetch`` cache, memoized per host.

    ``decide(url, per_path, whole_site)`` returns the reason of a refusal
    (``robots.txt(GPTBot)@2026-11-20``) or None. With None, ``last_missing`` says the host has
    no snapshot at all, and ``last_unknown`` (e.g. ``robots.txt(http 503)@2026-11-20``) that no
    signal refused but one could not be fetched (the consent is unknown); the caller decides.

    Each signal is ``(verdict, payload, date)``: ``rules`` (a parser or TDMRep entries),
    ``refuse`` (payload: the label), ``unknown`` (payload: the label) or ``allow``.
    """

    def __init__(self, cache: str | Path, user_agents: Sequence[str] = AI_USER_AGENTS,
                 use_ai_txt: bool = True, use_tdmrep: bool = True, memo_size: int = 100_000):
        self.conn = open_cache(cache, readonly=True)
        self.user_agents = list(user_agents)
        self.use_ai_txt = use_ai_txt
        self.use_tdmrep = use_tdmrep
        self.memo_size = memo_size
        self.last_missing = False
        self.last_unknown: str | None = None
        self._memo: dict[str, dict[str, Any] | None] = {}

    def site(self, host: str) -> dict[str, Any] | None:
        """Signals of a host: ``{resource: (verdict, payload, date)}``; None if never fetched."""
        if host in self._memo:
            return self._memo[host]
        rows = self.conn.execute(
            "SELECT resource, status, error, fetched_at, body FROM fetches WHERE host = ?", (host,)
        ).fetchall()
        site: dict[str, Any] | None = None
        robots = next((r for r in rows if r[0] == "robots.txt"), None)
        if robots is not None:
            site = {"robots.txt": self._robots_signal(robots)}
            for row in rows:
                if row[0] == "ai.txt" and self.use_ai_txt:
                    site["ai.txt"] = self._ai_signal(row)
                elif row[0] == "tdmrep.json" and self.use_tdmrep:
                    site["tdmrep"] = self._tdm_signal(row)
        if len(self._memo) >= self.memo_size:
            self._memo.pop(next(iter(self._memo)))
        self._memo[host] = site
        return site

    def host_state(self, host: str) -> str | None:
        """``answer``, ``unknown`` or ``policy`` for the host's robots.txt entry; None if absent."""
        row = self.conn.execute("SELECT status, error FROM fetches WHERE host = ? AND resource = 'robots.txt'",
                                (host,)).fetchone()
        return None if row is None else outcome_kind(row[0], row[1])

    @staticmethod
    def _date(fetched_at: float) -> str:
        return dt.datetime.fromtimestamp(fetched_at, dt.UTC).date().isoformat()

    def _robots_signal(self, row: tuple[Any, ...]) -> tuple[str, Any, str]:
        from protego import Protego

        _, status, error, fetched_at, body = row
        date = self._date(fetched_at)
        kind = outcome_kind(status, error)
        if kind == "unknown":
            return "unknown", unknown_label(status, error), date
        if kind == "policy":
            return "refuse", "invalid" if error and error.startswith("invalid") else "refused", date
        if status is not None and 200 <= status < 300:
            return "rules", Protego.parse(decode_body(body)), date
        if status in (401, 403):
            return "refuse", f"http {status}", date
        return "allow", None, date  # other 4xx, a redirect loop: unavailable (RFC 9309 §2.3.1.3)

    def _ai_signal(self, row: tuple[Any, ...]) -> tuple[str, Any, str]:
        from protego import Protego

        _, status, error, fetched_at, body = row
        date = self._date(fetched_at)
        if outcome_kind(status, error) == "unknown":
            return "unknown", unknown_label(status, error), date
        if status is None or not 200 <= status < 300:
            return "allow", None, date
        return "rules", Protego.parse(decode_body(body)), date

    def _tdm_signal(self, row: tuple[Any, ...]) -> tuple[str, Any, str]:
        _, status, error, fetched_at, body = row
        date = self._date(fetched_at)
        if outcome_kind(status, error) == "unknown":
            return "unknown", unknown_label(status, error), date
        if status is None or not 200 <= status < 300:
            return "allow", None, date
        try:
            return "rules", json.loads(decode_body(body)), date
        except ValueError:
            return "allow", None, date

    def decide(self, url: str, per_path: bool = True, whole_site: bool = True) -> str | None:
        """The consent reason removing ``url``; None: allowed, or see ``last_missing``/``last_unknown``.

        A refusal by any signal wins over another signal's unknown outcome."""
        self.last_missing = False
        self.last_unknown = None
        parsed = host_and_origin(url)
        if parsed is None:
            return None
        host, origin = parsed
        site = self.site(host)
        if site is None:
            self.last_missing = True
            return None
        try:
            path = urlsplit(url).path or "/"
        except ValueError:
            path = "/"
        checks = ["/"] if whole_site else []
        if per_path and path not in checks:
            checks.append(path)
        unknown: list[str] = []
        verdict, robots, date = site["robots.txt"]
        if verdict == "refuse":
            return f"robots.txt({robots})@{date}"
        if verdict == "unknown":
            unknown.append(f"robots.txt({robots})@{date}")
        elif verdict == "rules":
            for check in checks:
                agent = robots_blocked(robots, origin + check, self.user_agents)
                if agent:
                    return f"robots.txt({agent})@{date}"
        verdict, ai, ai_date = site.get("ai.txt", ("allow", None, ""))
        if verdict == "unknown":
            unknown.append(f"ai.txt({ai})@{ai_date}")
        elif verdict == "rules":
            for check in checks:
                if robots_blocked(ai, origin + check, [*self.user_agents, _GENERIC_AGENT]):
                    return f"ai.txt@{ai_date}"
        verdict, tdm, tdm_date = site.get("tdmrep", ("allow", None, ""))
        if verdict == "unknown":
            unknown.append(f"tdmrep({tdm})@{tdm_date}")
        elif verdict == "rules" and any(tdm_reserved(tdm, check) for check in checks):
            return f"tdmrep@{tdm_date}"
        if unknown:
            self.last_unknown = unknown[0]
        return None


def input_consent_state(urls: Iterable[str], reader: ConsentReader) -> tuple[int, int]:
    """(hosts with an answer or policy entry, hosts with only an unknown robots.txt) among the
    hosts of ``urls``; stops at the first host with an answer (the common case), so only an input
    whose cache entries all failed is read to the end."""
    seen: set[str] = set()
    unknown = 0
    for url in urls:
        parsed = host_and_origin(url)
        if parsed is None or parsed[0] in seen:
            continue
        seen.add(parsed[0])
        state = reader.host_state(parsed[0])
        if state in ("answer", "policy"):
            return 1, unknown
        if state == "unknown":
            unknown += 1
    return 0, unknown
