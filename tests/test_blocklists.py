"""blocklists: datatrove index cache, project lists, and `blocklists update` against a local server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nordpipe.blocklists import REPO_BLOCKLISTS, category_list_files, load_datatrove_lists, read_list_file

HOSTS_LIST = b"# test list\n0.0.0.0 evil-casino.example\n0.0.0.0 spil.example.net\n127.0.0.1 localhost\n"


class ListServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {"/gambling.txt": HOSTS_LIST, "/empty.txt": b"<html>nothing</html>\n"}
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append((self.path, self.headers.get("If-None-Match")))
                body = outer.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                etag = '"' + hashlib.md5(body).hexdigest() + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def list_server() -> Iterator[ListServer]:
    server = ListServer()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_update_downloads_with_checksums_and_is_used_by_the_filter(list_server: ListServer, tmp_path: Path,
                                                                   nordpipe_cli: Any, make_records: Any) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[source]]\nname = "local-gambling"\ncategory = "gambling"\nurl = "{list_server.url}/gambling.txt"\n')
    store = tmp_path / "store"
    result = nordpipe_cli("blocklists", "update", "--sources", sources, "--store", store, "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((store / "manifest.json").read_text())
    entry = manifest["lists"]["gambling/local-gambling"]
    assert entry["sha256"] == hashlib.sha256(HOSTS_LIST).hexdigest()
    assert entry["entries"] == 2 and entry["bytes"] == len(HOSTS_LIST)
    assert entry["fetched_at"].endswith("+00:00")
    assert (store / "gambling" / "local-gambling.txt").read_bytes() == HOSTS_LIST
    # Unchanged on the server: a conditional request, answered 304, keeps the file.
    result = nordpipe_cli("blocklists", "update", "--sources", sources, "--store", store, "--json")
    assert json.loads(result.stdout)[0]["status"] == "unchanged"
    assert list_server.requests[-1][1] == json.loads((store / "manifest.json").read_text())["lists"]["gambling/local-gambling"]["etag"]
    # The filter uses the store's lists by category.
    inp = tmp_path / "in"
    inp.mkdir()
    with gzip.open(inp / "00000.jsonl.gz", "wt") as handle:
        for number, url in enumerate(["https://www.evil-casino.example/", "https://nyheder.dk/"]):
            handle.write(json.dumps(make_records(f"d{number}", "Tekst.", url=url)) + "\n")
    result = nordpipe_cli("filter", "urls", inp, tmp_path / "out", "--store", store, "--no-datatrove-list", "--json")
    assert json.loads(result.stdout)["removed"] == {"urls:blocklist(gambling)": 1}


def test_failed_download_keeps_previous_copy_and_exits_1(list_server: ListServer, tmp_path: Path,
                                                         nordpipe_cli: Any) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[source]]\nname = "g"\ncategory = "gambling"\nurl = "{list_server.url}/gambling.txt"\n')
    store = tmp_path / "store"
    assert nordpipe_cli("blocklists", "update", "--sources", sources, "--store", store).returncode == 0
    list_server.files.pop("/gambling.txt")
    result = nordpipe_cli("blocklists", "update", "--sources", sources, "--store", store)
    assert result.returncode == 1
    assert "failed" in result.stdout
    assert (store / "gambling" / "g.txt").read_bytes() == HOSTS_LIST
    assert "404" in json.loads((store / "manifest.json").read_text())["lists"]["gambling/g"]["last_error"]
    # A page that is not a list is refused, not stored.
    sources.write_text(f'[[source]]\nname = "e"\ncategory = "scam"\nurl = "{list_server.url}/empty.txt"\n')
    assert nordpipe_cli("blocklists", "update", "--sources", sources, "--store", store).returncode == 1
    assert not (store / "scam" / "e.txt").exists()


@pytest.mark.slow
def test_datatrove_index_is_built_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NORDPIPE_CACHE_DIR", str(tmp_path / "cache"))
    lists = load_datatrove_lists()
    assert len(lists.domains) > 4_000_000
    assert lists.domains.contains("0-1avsex.com") and not lists.domains.contains("dr.dk")
    built = list((tmp_path / "cache" / "blocklists").glob("datatrove-*/domains.u64.npy"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    assert len(load_datatrove_lists().urls) == len(lists.urls) > 10_000
    assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt


def test_project_lists_parse_cleanly() -> None:
    # The placeholder .example lists are gone: the categories hold UT1's real lists (adult is
    # datatrove's bundled UT1 adult list, not a folder). Every line parses and no list is empty.
    files = category_list_files(REPO_BLOCKLISTS)
    assert {c for c, _ in files} == {"gambling", "phishing", "malware", "scam"}
    for category, path in files:
        parsed = read_list_file(path, category)
        assert parsed.skipped == 0 and (parsed.domains or parsed.urls), path
        assert not any(d.endswith(".example") for d in parsed.domains), path
