"""Consent when sites cannot be reached (issue 19): refused vs unknown, honest fetch counts,
unknown outcomes never cached as fresh, and ``filter urls --consent-unknown``.

Everything runs against servers the tests start on 127.0.0.1 (and a closed port there); the
fetcher is pointed at them with ``--resolve '*.test:127.0.0.1'``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import http.server
import json
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nordpipe.documents import decode_record
from nordpipe.robots import ConsentReader

TODAY = dt.datetime.now(dt.UTC).date().isoformat()
FLAGS = ["--resolve", "*.test:127.0.0.1", "--allow-private", "--resource", "robots.txt", "--timeout", "2",
         "--retries", "0", "--json"]
GPTBOT_NO = b"User-agent: GPTBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n"


class Sites:
    """A loopback HTTP server answering ``/robots.txt`` by Host header from ``answers``
    (host -> list of (status, body); the last one repeats), counting requests per host."""

    def __init__(self, answers: dict[str, list[tuple[int, bytes]]]):
        self.answers = answers
        self.requests: dict[str, int] = {}
        lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
                with lock:
                    seen = outer.requests.get(host, 0)
                    outer.requests[host] = seen + 1
                    script = outer.answers.get(host, [(404, b"not found")])
                    status, body = script[min(seen, len(script) - 1)]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sites() -> Iterator[Sites]:
    srv = Sites({
        "gptbot.test": [(200, GPTBOT_NO)],
        "notfound.test": [(404, b"no such file")],
        "forbidden.test": [(403, b"go away")],
        "error.test": [(503, b"down for maintenance")],
    })
    yield srv
    srv.close()


def write_docs(path: Path, make_records: Any, urls: list[str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    with gzip.open(path / "00000.jsonl.gz", "wt") as handle:
        for number, url in enumerate(urls):
            handle.write(json.dumps(make_records(f"d{number}", f"Tekst nummer {number} om noget.", url=url)) + "\n")
    return path


def fetch(nordpipe_cli: Any, inp: Path, cache: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    result = nordpipe_cli("robots", "fetch", inp, "--cache", cache, *FLAGS, *extra)
    return result.returncode, json.loads(result.stdout), result.stderr


def rows(cache: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(cache) as conn:
        conn.row_factory = sqlite3.Row
        return {r["host"]: dict(r) for r in conn.execute("SELECT * FROM fetches WHERE resource = 'robots.txt'")}


def read_out(out: Path, folder: str) -> dict[str, dict[str, Any]]:
    path = out / folder / "00000.jsonl.gz"
    if not path.exists():
        return {}
    with gzip.open(path, "rt") as handle:
        return {m["url"]: m.get("nordpipe", {}) for m in (decode_record(json.loads(line))["metadata"] for line in handle)}


def test_all_unreachable_fetch_reports_failures_and_exits_1(sites: Sites, closed_port: int, tmp_path: Path,
                                                             nordpipe_cli: Any, make_records: Any) -> None:
    urls = [f"http://down.test:{closed_port}/a", f"http://error.test:{sites.port}/a"]
    inp = write_docs(tmp_path / "in", make_records, urls)
    cache = tmp_path / "c.sqlite"
    code, summary, stderr = fetch(nordpipe_cli, inp, cache)
    assert code == 1
    assert "nothing could be fetched" in stderr and str(cache) in stderr
    assert (summary["attempted"], summary["fetched"], summary["failed"], summary["refused"]) == (2, 0, 2, 0)
    cached = rows(cache)
    assert cached["error.test"]["status"] == 503 and cached["error.test"]["last_error"] == "http 503"
    assert cached["down.test"]["status"] is None and cached["down.test"]["error"].startswith("unreachable")
    for row in cached.values():
        assert row["failures"] == 1
        assert row["retry_at"] == pytest.approx(row["fetched_at"] + 600, abs=1)  # --retry-after 10m by default
    reader = ConsentReader(cache)
    assert reader.decide(f"http://error.test:{sites.port}/a") is None
    assert reader.last_unknown == f"robots.txt(http 503)@{TODAY}"
    assert reader.decide(f"http://down.test:{closed_port}/a") is None
    assert reader.last_unknown == f"robots.txt(unreachable)@{TODAY}"
    # Within the backoff the next run sends nothing and says so; it is not "nothing fetched".
    code, summary, _ = fetch(nordpipe_cli, inp, cache)
    assert code == 0 and summary["retry_waiting"] == 2 and summary["attempted"] == 0
    assert sites.requests == {"error.test": 1}


def test_unknown_is_not_fresh_and_is_retried(tmp_path: Path, nordpipe_cli: Any, make_records: Any) -> None:
    # flaky.test answers 503 first, then a robots.txt shutting GPTBot out, then 503 again.
    srv = Sites({"flaky.test": [(503, b"busy"), (200, GPTBOT_NO), (503, b"busy")]})
    try:
        inp = write_docs(tmp_path / "in", make_records, [f"http://flaky.test:{srv.port}/a"])
        cache = tmp_path / "c.sqlite"
        code, first, _ = fetch(nordpipe_cli, inp, cache, "--retry-after", "0")
        assert code == 1 and first["failed"] == 1 and first["fetched"] == 0
        # The failure is not fresh (retry after 0 s): the very next run asks again and gets the answer.
        code, second, _ = fetch(nordpipe_cli, inp, cache)
        assert code == 0 and (second["fetched"], second["failed"], second["fresh_skipped"]) == (1, 0, 0)
        assert srv.requests == {"flaky.test": 2}
        row = rows(cache)["flaky.test"]
        assert (row["status"], row["failures"], row["retry_at"]) == (200, 0, None)
        # An answer is fresh for --max-age: no request.
        code, third, _ = fetch(nordpipe_cli, inp, cache)
        assert code == 0 and third["fresh_skipped"] == 1 and srv.requests == {"flaky.test": 2}
        # Refetched (--max-age 0) while the site fails: the earlier answer stays in use (RFC 9309 §2.4).
        code, fourth, _ = fetch(nordpipe_cli, inp, cache, "--max-age", "0")
        assert code == 1 and fourth["failed"] == 1 and fourth["kept_previous"] == 1
        row = rows(cache)["flaky.test"]
        assert (row["status"], row["failures"], row["last_error"]) == (200, 1, "http 503")
        assert ConsentReader(cache).decide(f"http://flaky.test:{srv.port}/a") == f"robots.txt(GPTBot)@{TODAY}"
    finally:
        srv.close()


def test_schema_1_cache_failures_are_refetched(sites: Sites, tmp_path: Path, nordpipe_cli: Any,
                                               make_records: Any) -> None:
    """A cache written before unknown outcomes were told apart held a fresh 'unreachable' row."""
    cache = tmp_path / "old.sqlite"
    with sqlite3.connect(cache) as conn:
        conn.execute("CREATE TABLE fetches (host TEXT NOT NULL, resource TEXT NOT NULL, url TEXT NOT NULL, "
                     "final_url TEXT, status INTEGER, error TEXT, fetched_at REAL NOT NULL, elapsed REAL, "
                     "redirects INTEGER, truncated INTEGER, body BLOB, PRIMARY KEY (host, resource))")
        conn.execute("INSERT INTO fetches VALUES ('gptbot.test', 'robots.txt', 'x', NULL, NULL, "
                     "'unreachable: ConnectError: offline', strftime('%s','now'), 0, 0, 0, NULL)")
    inp = write_docs(tmp_path / "in", make_records, [f"http://gptbot.test:{sites.port}/a"])
    code, summary, _ = fetch(nordpipe_cli, inp, cache)
    assert code == 0 and summary["fetched"] == 1 and sites.requests == {"gptbot.test": 1}
    assert rows(cache)["gptbot.test"]["status"] == 200


def test_filter_keeps_and_marks_unknown_or_removes_it(sites: Sites, closed_port: int, tmp_path: Path,
                                                      nordpipe_cli: Any, make_records: Any) -> None:
    port = sites.port
    gptbot, notfound, forbidden = (f"http://{h}.test:{port}/a" for h in ("gptbot", "notfound", "forbidden"))
    error, down = f"http://error.test:{port}/a", f"http://down.test:{closed_port}/a"
    inp = write_docs(tmp_path / "in", make_records, [gptbot, notfound, forbidden, error, down])
    cache = tmp_path / "c.sqlite"
    code, summary, stderr = fetch(nordpipe_cli, inp, cache)
    assert code == 0, stderr
    assert (summary["attempted"], summary["fetched"], summary["failed"]) == (5, 3, 2)
    assert "3 fetched" in stderr and "2 failed" in stderr

    out = tmp_path / "keep"
    result = nordpipe_cli("filter", "urls", inp, out, "--consent-cache", cache, "--no-datatrove-list",
                          "--keep-removed", "--json")
    assert result.returncode == 0, result.stderr
    assert {u: m.get("consent") for u, m in read_out(out, "documents").items()} == {
        notfound: None,  # 404: no robots.txt, allowed (RFC 9309 "unavailable")
        error: f"unknown:robots.txt(http 503)@{TODAY}",
        down: f"unknown:robots.txt(unreachable)@{TODAY}",
    }
    assert {u: m["removed"] for u, m in read_out(out, "removed").items()} == {
        gptbot: f"consent:robots.txt(GPTBot)@{TODAY}",
        forbidden: f"consent:robots.txt(http 403)@{TODAY}",
    }
    assert json.loads(result.stdout)["extra"]["consent unknown (docs, keep)"] == 2

    out = tmp_path / "remove"
    result = nordpipe_cli("filter", "urls", inp, out, "--consent-cache", cache, "--no-datatrove-list",
                          "--keep-removed", "--consent-unknown", "remove", "--json")
    assert result.returncode == 0, result.stderr
    assert set(read_out(out, "documents")) == {notfound}
    removed = {u: m["removed"] for u, m in read_out(out, "removed").items()}
    assert removed[error] == f"consent:unknown:robots.txt(http 503)@{TODAY}"
    assert removed[down] == f"consent:unknown:robots.txt(unreachable)@{TODAY}"
    assert removed[gptbot] == f"consent:robots.txt(GPTBot)@{TODAY}"

    bad = nordpipe_cli("filter", "urls", inp, tmp_path / "bad", "--consent-cache", cache, "--consent-unknown", "drop")
    assert bad.returncode == 2


def test_filter_refuses_a_cache_of_only_failures(sites: Sites, closed_port: int, tmp_path: Path,
                                                 nordpipe_cli: Any, make_records: Any) -> None:
    error, down = f"http://error.test:{sites.port}/a", f"http://down.test:{closed_port}/a"
    inp = write_docs(tmp_path / "in", make_records, [error, down])
    cache = tmp_path / "c.sqlite"
    assert fetch(nordpipe_cli, inp, cache)[0] == 1
    out = tmp_path / "out"
    result = nordpipe_cli("filter", "urls", inp, out, "--consent-cache", cache, "--no-datatrove-list")
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "holds only failed fetches" in message and str(cache) in message
    assert "nordpipe robots fetch" in message and "--consent-unknown" in message
    assert not (out / ".nordpipe" / "complete.json").exists()
    # An explicit policy is a choice: the run goes on by it.
    result = nordpipe_cli("filter", "urls", inp, out, "--consent-cache", cache, "--no-datatrove-list",
                          "--consent-unknown", "keep")
    assert result.returncode == 0, result.stderr
    assert {u: m.get("consent") for u, m in read_out(out, "documents").items()} == {
        error: f"unknown:robots.txt(http 503)@{TODAY}", down: f"unknown:robots.txt(unreachable)@{TODAY}"}
