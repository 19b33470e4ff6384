"""robots fetch and consent decisions against a real HTTP server on loopback.

The server answers by Host header, so one port serves many "sites" (``*.test``); the fetcher
is pointed at it with ``--resolve '*.test:127.0.0.1'``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import http.server
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nordpipe.documents import decode_record
from nordpipe.robots import AddressPolicy, ConsentReader, tdm_reserved

TODAY = dt.datetime.now(dt.UTC).date().isoformat()
FILLER = ("# " + "x" * 98 + "\n") * 21_000  # ~2.1 MB of comment lines


def _sites(port: int) -> dict[str, dict[str, Any]]:
    """host -> path -> (status, body, headers) or a callable special case."""
    allow = (200, b"User-agent: *\nAllow: /\n", {})
    return {
        "allow.test": {"/robots.txt": allow},
        "gptbot.test": {"/robots.txt": (200, b"User-agent: GPTBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n", {})},
        "ccbot.test": {"/robots.txt": (200, b"User-agent: CCBot\nDisallow: /\n", {})},
        "star.test": {"/robots.txt": (200, b"User-agent: *\nDisallow: /\n", {})},
        "notfound.test": {},
        "error.test": {"/robots.txt": (500, b"oops", {})},
        "slow.test": {"/robots.txt": "sleep"},
        "loop.test": {"/robots.txt": "loop"},
        "big.test": {"/robots.txt": (200, b"User-agent: GPTBot\nDisallow: /private/\n" + FILLER.encode()
                                     + b"User-agent: CCBot\nDisallow: /\n", {})},
        "badutf8.test": {"/robots.txt": (200, b"# caf\xe9 \xff\xfe\x80 broken\nUser-agent: GPTBot\nDisallow: /\n", {})},
        "aitxt.test": {"/robots.txt": allow, "/ai.txt": (200, b"User-Agent: *\nDisallow: /\n", {})},
        "tdm.test": {"/robots.txt": allow, "/.well-known/tdmrep.json": (
            200, json.dumps([{"location": "/", "tdm-reservation": 1, "tdm-policy": "https://tdm.test/p.json"}]).encode(),
            {"Content-Type": "application/json"})},
        "redirect.test": {"/robots.txt": (301, b"", {"Location": f"http://gptbot.test:{port}/robots.txt"})},
        "gzip.test": {"/robots.txt": (200, gzip.compress(b"User-agent: ClaudeBot\nDisallow: /\n"),
                                      {"Content-Encoding": "gzip"})},
        "tofile.test": {"/robots.txt": (302, b"", {"Location": "file:///etc/passwd"})},
    }


class VirtualHosts:
    """A threaded HTTP server on ``address`` that serves ``_sites`` by Host header and logs requests."""

    def __init__(self, address: str = "127.0.0.1", extra: dict[str, dict[str, Any]] | None = None):
        self.requests: list[tuple[str, str]] = []
        lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
                with lock:
                    outer.requests.append((host, self.path))
                site = {**_sites(outer.port), **(outer.extra or {})}.get(host, {})
                answer = site.get(self.path.split("?", 1)[0], (404, b"not found", {}))
                if answer == "sleep":
                    time.sleep(3)
                    answer = (200, b"User-agent: *\nAllow: /\n", {})
                elif answer == "loop":
                    hop = int(self.path.partition("?n=")[2] or 0)
                    answer = (302, b"", {"Location": f"/robots.txt?n={hop + 1}"})
                status, body, headers = answer
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.extra = extra
        self.server = http.server.ThreadingHTTPServer((address, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[VirtualHosts]:
    srv = VirtualHosts()
    yield srv
    srv.close()


def write_docs(path: Path, make_records: Any, urls: list[str], created: str = "2020-01-01, 2020-01-01") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    with gzip.open(path / "00000.jsonl.gz", "wt") as handle:
        for number, url in enumerate(urls):
            record = make_records(f"d{number}", f"Tekst nummer {number} om noget.", url=url)
            record["created"] = created
            handle.write(json.dumps(record) + "\n")
    return path


# slow.test answers after 3 s; 2 s leaves the other hosts' answers time on a loaded machine
# (with 0.8 s a slow answer under load was retried and counted twice)
FETCH_FLAGS = ["--resolve", "*.test:127.0.0.1", "--timeout", "2", "--retries", "1", "--backoff", "0.05"]


def fetch(nordpipe_cli: Any, inp: Path, cache: Path, *extra: str) -> dict[str, Any]:
    result = nordpipe_cli("robots", "fetch", inp, "--cache", cache, *FETCH_FLAGS, *extra, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def rows(cache: Path) -> dict[tuple[str, str], dict[str, Any]]:
    with sqlite3.connect(cache) as conn:
        conn.row_factory = sqlite3.Row
        return {(r["host"], r["resource"]): dict(r) for r in conn.execute("SELECT * FROM fetches")}


def test_every_site_gets_its_documented_decision(server: VirtualHosts, tmp_path: Path, nordpipe_cli: Any,
                                                  make_records: Any) -> None:
    port = server.port
    hosts = [h for h in _sites(port) if h != "tofile.test"]
    urls = [f"http://{h}:{port}/side/1" for h in hosts] + [f"http://big.test:{port}/private/x"]
    inp = write_docs(tmp_path / "in", make_records, urls, created="2015-03-01, 2015-03-01")
    cache = tmp_path / "consent.sqlite"
    summary = fetch(nordpipe_cli, inp, cache, "--allow-private")
    assert summary["hosts"] == len(hosts)
    cached = rows(cache)
    assert cached[("big.test", "robots.txt")]["truncated"] == 1
    assert len(cached[("big.test", "robots.txt")]["body"]) == 500 * 1024
    assert cached[("loop.test", "robots.txt")]["error"].startswith("too many redirects")
    assert cached[("slow.test", "robots.txt")]["error"].startswith("timeout")
    assert cached[("redirect.test", "robots.txt")]["final_url"] == f"http://gptbot.test:{port}/robots.txt"
    # 500 is retried once (--retries 1): two requests for error.test's robots.txt.
    assert server.requests.count(("error.test", "/robots.txt")) == 2
    # The redirect loop stops after 5 redirects: 6 requests.
    assert sum(1 for h, p in server.requests if h == "loop.test" and p.startswith("/robots.txt")) == 6
    out = tmp_path / "out"
    result = nordpipe_cli("filter", "urls", inp, out, "--consent-cache", cache, "--no-datatrove-list", "--keep-removed", "--json")
    assert result.returncode == 0, result.stderr
    removed = {}
    with gzip.open(out / "removed" / "00000.jsonl.gz", "rt") as handle:
        for line in handle:
            record = decode_record(json.loads(line))
            removed[record["metadata"]["url"]] = record["metadata"]["nordpipe"]["removed"]
    expected = {
        f"http://gptbot.test:{port}/side/1": f"consent:robots.txt(GPTBot)@{TODAY}",
        f"http://ccbot.test:{port}/side/1": f"consent:robots.txt(CCBot)@{TODAY}",
        f"http://star.test:{port}/side/1": f"consent:robots.txt(*)@{TODAY}",
        f"http://badutf8.test:{port}/side/1": f"consent:robots.txt(GPTBot)@{TODAY}",
        f"http://aitxt.test:{port}/side/1": f"consent:ai.txt@{TODAY}",
        f"http://tdm.test:{port}/side/1": f"consent:tdmrep@{TODAY}",
        f"http://redirect.test:{port}/side/1": f"consent:robots.txt(GPTBot)@{TODAY}",
        f"http://gzip.test:{port}/side/1": f"consent:robots.txt(ClaudeBot)@{TODAY}",
        # 2 MB file: the GPTBot rule in the first 500 KiB counts, the CCBot rule after it does not.
        f"http://big.test:{port}/private/x": f"consent:robots.txt(GPTBot)@{TODAY}",
    }
    assert removed == expected
    # 500 and a timeout are no answer: consent unknown, kept (the default) and marked.
    kept = {f"http://{h}:{port}/side/1": None for h in ("allow.test", "notfound.test", "loop.test", "big.test")}
    kept[f"http://error.test:{port}/side/1"] = f"unknown:robots.txt(http 500)@{TODAY}"
    kept[f"http://slow.test:{port}/side/1"] = f"unknown:robots.txt(timeout)@{TODAY}"
    with gzip.open(out / "documents" / "00000.jsonl.gz", "rt") as handle:
        records = [decode_record(json.loads(line))["metadata"] for line in handle]
    assert {m["url"]: m.get("nordpipe", {}).get("consent") for m in records} == kept
    stats = json.loads(result.stdout)
    assert stats["removed_total"] == len(expected)


def test_loop_is_not_retried_and_scopes_differ(server: VirtualHosts, tmp_path: Path, nordpipe_cli: Any,
                                                make_records: Any) -> None:
    port = server.port
    inp = write_docs(tmp_path / "in", make_records, [f"http://big.test:{port}/", f"http://loop.test:{port}/"])
    cache = tmp_path / "c.sqlite"
    fetch(nordpipe_cli, inp, cache, "--allow-private", "--resource", "robots.txt")
    # A redirect loop is cut after 5 redirects (6 requests) and not retried.
    assert sum(1 for h, _ in server.requests if h == "loop.test") == 6
    reader = ConsentReader(cache)
    assert reader.decide(f"http://big.test:{port}/private/a", per_path=True, whole_site=False) == f"robots.txt(GPTBot)@{TODAY}"
    assert reader.decide(f"http://big.test:{port}/public", per_path=True, whole_site=False) is None
    assert reader.decide(f"http://unknown.test:{port}/", per_path=True) is None and reader.last_missing


def test_private_addresses_are_refused_directly_and_through_redirects(tmp_path: Path, nordpipe_cli: Any,
                                                                       make_records: Any) -> None:
    internal = VirtualHosts("127.0.0.1")
    public = VirtualHosts("127.0.0.2", extra={
        "public.test": {"/robots.txt": (302, b"", {"Location": f"http://internal.test:{internal.port}/robots.txt"})},
        "literal.test": {"/robots.txt": (302, b"", {"Location": f"http://127.0.0.1:{internal.port}/robots.txt"})},
        "fine.test": {"/robots.txt": (200, b"User-agent: GPTBot\nDisallow: /\n", {})},
    })
    try:
        urls = [f"http://allow.test:{internal.port}/a", f"http://public.test:{public.port}/a",
                f"http://literal.test:{public.port}/a", f"http://fine.test:{public.port}/a",
                f"http://tofile.test:{internal.port}/a"]
        inp = write_docs(tmp_path / "in", make_records, urls)
        cache = tmp_path / "c.sqlite"
        common = ["--cache", cache, "--resource", "robots.txt", "--timeout", "2", "--retries", "0", "--json",
                  "--resolve", "allow.test:127.0.0.1", "--resolve", "internal.test:127.0.0.1",
                  "--resolve", "public.test:127.0.0.2", "--resolve", "literal.test:127.0.0.2",
                  "--resolve", "fine.test:127.0.0.2", "--resolve", "tofile.test:127.0.0.1"]
        # 127.0.0.2 plays a public address here; nothing else is allowed.
        result = nordpipe_cli("robots", "fetch", inp, *common, "--allow-network", "127.0.0.2/32")
        assert result.returncode == 0, result.stderr
        cached = rows(cache)
        assert cached[("allow.test", "robots.txt")]["error"].startswith("refused: allow.test: 127.0.0.1 is a loopback")
        assert cached[("public.test", "robots.txt")]["error"].startswith("refused: internal.test: 127.0.0.1 is a loopback")
        assert cached[("literal.test", "robots.txt")]["error"].startswith("refused: 127.0.0.1: 127.0.0.1 is a loopback")
        assert cached[("tofile.test", "robots.txt")]["error"].startswith("refused: tofile.test: 127.0.0.1 is a loopback")
        assert cached[("fine.test", "robots.txt")]["status"] == 200
        assert internal.requests == []  # nothing ever reached the "internal" server
        assert ("public.test", "/robots.txt") in public.requests
        # Refused robots.txt counts as unreachable: the site's documents go.
        reader = ConsentReader(cache)
        assert reader.decide(f"http://public.test:{public.port}/a") == f"robots.txt(refused)@{TODAY}"
        # With --allow-private the same hosts are fetched; a file:// redirect stays refused.
        result = nordpipe_cli("robots", "fetch", inp, *common, "--allow-private", "--max-age", "0")
        assert result.returncode == 0, result.stderr
        cached = rows(cache)
        assert cached[("public.test", "robots.txt")]["status"] == 404
        assert cached[("allow.test", "robots.txt")]["status"] == 200
        assert cached[("tofile.test", "robots.txt")]["error"] == "refused: scheme file in file:///etc/passwd"
    finally:
        internal.close()
        public.close()


@pytest.mark.parametrize(
    ("address", "refused"),
    [("127.0.0.1", True), ("10.1.2.3", True), ("192.168.0.1", True), ("169.254.169.254", True),
     ("100.64.0.1", True), ("::1", True), ("fd00:ec2::254", True), ("::ffff:127.0.0.1", True),
     ("0.0.0.0", True), ("224.0.0.1", True), ("93.184.215.14", False), ("2a00:1450:4001::200e", False)],
)
def test_address_policy(address: str, refused: bool) -> None:
    assert (AddressPolicy().refusal(address) is not None) is refused
    assert AddressPolicy(allow_private=True).refusal(address) is None


def test_second_fetch_within_max_age_makes_no_requests(server: VirtualHosts, tmp_path: Path, nordpipe_cli: Any,
                                                         make_records: Any) -> None:
    port = server.port
    hosts = ["allow.test", "gptbot.test", "notfound.test", "aitxt.test"]
    inp = write_docs(tmp_path / "in", make_records, [f"http://{h}:{port}/x" for h in hosts])
    cache = tmp_path / "c.sqlite"
    first = fetch(nordpipe_cli, inp, cache, "--allow-private")
    assert first["fetched"] == 12 and len(server.requests) == 12
    second = fetch(nordpipe_cli, inp, cache, "--allow-private", "--max-age", "1h")
    assert second["fetched"] == 0 and second["fresh_skipped"] == 12
    assert len(server.requests) == 12
    # Age two hosts' entries by two hours: only those are fetched again.
    with sqlite3.connect(cache) as conn:
        conn.execute("UPDATE fetches SET fetched_at = fetched_at - 7200 WHERE host IN ('gptbot.test', 'aitxt.test')")
    third = fetch(nordpipe_cli, inp, cache, "--allow-private", "--max-age", "1h")
    assert third["fetched"] == 6
    assert sorted({h for h, _ in server.requests[12:]}) == ["aitxt.test", "gptbot.test"]


def test_tdm_reservation_rules() -> None:
    rules = [{"location": "/", "tdm-reservation": 0}, {"location": "/news/*", "tdm-reservation": 1}]
    assert not tdm_reserved(rules, "/")
    assert tdm_reserved(rules, "/news/a")
    assert not tdm_reserved("not a list", "/")


def test_real_robots_files_parse(shared: Path) -> None:
    from protego import Protego

    from nordpipe.robots import AI_USER_AGENTS, decode_body, robots_blocked

    files = sorted((shared / "data" / "robots").glob("*.robots.txt"))
    assert len(files) == 10
    for file in files:
        parser = Protego.parse(decode_body(file.read_bytes()))
        for path in ("/", "/search/realtime", "/some/page?x=1"):
            robots_blocked(parser, f"https://example.com{path}", AI_USER_AGENTS)
    twitter = Protego.parse(decode_body((shared / "data" / "robots" / "twitter.robots.txt").read_bytes()))
    assert not twitter.can_fetch("https://twitter.com/search/realtime", "Googlebot")
