"""The shipped UT1 lists, the Nordic allowlist and ``blocklists update`` of UT1 tarballs.

- entries sampled from the shipped files (read here with a parser of our own, not nordpipe's)
  are removed by the real ``nordpipe filter urls`` with the reason naming their category, also
  on subdomains and with paths; entries of datatrove's bundled UT1 adult list as ``adult``;
- real Nordic news and public-service sites are kept, even with banned words in the URL (the
  allowlist), and lose that protection with ``--no-nordic-exceptions``;
- the bulk parser of list files equals ``parse_list_line`` on every shipped line;
- the shipped files are UT1's lines unchanged (against ``../shared``, skipped without it;
  its synthetic twin runs ``scripts/import_ut1.py`` on a made-up UT1 folder);
- ``blocklists update`` against a local server serving UT1-like tarballs: the store copy
  replaces the shipped list of the same name, offline exits 1 with a clear error and keeps
  the previous lists.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import random
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nordpipe.blocklists import (
    CATEGORY_PRECEDENCE,
    DATATROVE_LIST_ARCHIVE,
    UT1_CATEGORIES,
    datatrove_assets,
    parse_list_line,
    read_list_file,
    shipped_blocklists,
)

REPO = Path(__file__).resolve().parents[1]

NORDIC_NEWS = ["dr.dk", "tv2.dk", "politiken.dk", "berlingske.dk", "jyllands-posten.dk", "ekstrabladet.dk",
               "nrk.no", "vg.no", "aftenposten.no", "dagbladet.no", "svt.se", "dn.se", "aftonbladet.se",
               "expressen.se", "svd.se", "yle.fi", "hs.fi", "iltalehti.fi", "ruv.is", "mbl.is", "visir.is",
               "kvf.fo", "knr.gl"]
"""Real Nordic news sites: never removed."""


def decoded_line(line: str) -> dict[str, Any]:
    """A record of a stage output with its metadata as a dict (on disk it is a JSON string)."""
    record = json.loads(line)
    if isinstance(record.get("metadata"), str):
        record["metadata"] = json.loads(record["metadata"])
    return record


def shipped_entries() -> dict[str, dict[str, set[str]]]:
    """``{category: {"domains": ..., "urls": ...}}`` of the shipped UT1 files, read the plain way:
    UT1 lines are ``host`` or ``host/path``; ``#`` lines are our header."""
    found: dict[str, dict[str, set[str]]] = {}
    for category, ut1_names in UT1_CATEGORIES.items():
        entries = found.setdefault(category, {"domains": set(), "urls": set()})
        for ut1 in ut1_names:
            with gzip.open(shipped_blocklists() / category / f"ut1-{ut1}.txt.gz", "rt", encoding="utf-8") as handle:
                for line in handle:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        entries["urls" if "/" in line else "domains"].add(line)
    return found


def expected_category(entry: str, kind: str, lists: dict[str, dict[str, set[str]]]) -> str:
    """The category a listed entry is reported under: the first, by precedence, listing it."""
    return next(c for c in CATEGORY_PRECEDENCE if c in lists and entry in lists[c][kind])


def write_documents(folder: Path, urls: list[str]) -> None:
    folder.mkdir(parents=True)
    with gzip.open(folder / "00000.jsonl.gz", "wt", encoding="utf-8") as out:
        for number, url in enumerate(urls):
            record = {"id": f"u{number}", "text": "Tekst.", "source": "t", "added": "2026-01-01",
                      "created": "2026-01-01, 2026-01-01", "metadata": {"url": url}}
            out.write(json.dumps(record) + "\n")


def fates(nordpipe_cli: Any, tmp_path: Path, name: str, urls: list[str], *options: Any) -> dict[str, str | None]:
    """url -> removal reason (None: kept) from a real ``nordpipe filter urls`` run."""
    write_documents(tmp_path / f"{name}-in", urls)
    out = tmp_path / f"{name}-out"
    # The inputs are made of listed URLs: removing nearly all of them is the expected outcome,
    # which the removal-share guard must be told (--max-removed-share 1).
    result = nordpipe_cli("filter", "urls", tmp_path / f"{name}-in", out, "--keep-removed", "--json",
                          "--max-removed-share", "1", *options, env={"NORDPIPE_BLOCKLIST_STORE": str(tmp_path / "no-store")})
    assert result.returncode == 0, result.stderr
    decided: dict[str, str | None] = {}
    for folder in ("documents", "removed"):
        for path in (out / folder).glob("*.jsonl.gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                for record in map(decoded_line, handle):
                    decided[record["metadata"]["url"]] = record["metadata"].get("nordpipe", {}).get("removed")
    assert len(decided) == len(urls)
    return decided


def unlisted_parents(domain: str, lists: dict[str, dict[str, set[str]]]) -> bool:
    """No parent domain of ``domain`` is on any shipped list (so the domain itself decides)."""
    labels = domain.split(".")
    parents = {".".join(labels[i:]) for i in range(1, len(labels) - 1)}
    return not any(parents & entries["domains"] for entries in lists.values())


def host_unlisted(host: str, lists: dict[str, dict[str, set[str]]]) -> bool:
    """Neither the host nor a parent domain of it is on a shipped domain list."""
    labels = host.split(".")
    candidates = {".".join(labels[i:]) for i in range(len(labels) - 1)}
    return not any(candidates & entries["domains"] for entries in lists.values())


# --------------------------------------------------------------------------------------------
# The shipped lists through the real CLI


def test_sampled_ut1_entries_are_removed_with_their_category(tmp_path: Path, nordpipe_cli: Any) -> None:
    lists = shipped_entries()
    rng = random.Random(17)
    cases: dict[str, str] = {}
    for category, entries in lists.items():
        domains = sorted(d for d in entries["domains"] if unlisted_parents(d, lists))
        urls = sorted(entries["urls"])
        assert len(domains) + len(urls) > 500, category  # real lists, not a handful of placeholders
        for domain in rng.sample(domains, min(6, len(domains))):
            reason = f"urls:blocklist({expected_category(domain, 'domains', lists)})"
            cases[f"https://{domain}/"] = reason
            cases[f"http://nordpipe-test-sub.{domain}/side/artikel?id=7"] = reason  # subdomain and path
            cases[f"https://a.b.{domain.upper()}/x"] = reason  # case does not matter
        for entry in rng.sample(urls, min(6, len(urls))):
            if not host_unlisted(entry.split("/", 1)[0], lists):
                continue  # its domain decides first
            cases[f"https://{entry}"] = f"urls:url_list({expected_category(entry, 'urls', lists)})"
            cases[f"http://{entry}"] = cases[f"https://{entry}"]
    # Each category is exercised, including entries UT1 lists under both phishing and malware.
    assert {reason.split("(")[1].rstrip(")") for reason in cases.values()} == set(UT1_CATEGORIES)
    kept = ["https://www.dr.dk/nyheder/indland", "https://www.nrk.no/norge/"]
    decided = fates(nordpipe_cli, tmp_path, "ut1", [*cases, *kept], "--no-datatrove-list")
    assert {url: decided[url] for url in cases} == cases
    assert decided[kept[0]] is None and decided[kept[1]] is None
    # A listed URL entry removes that URL, not its neighbours on the same host.
    entry = next(u for u in sorted(lists["phishing"]["urls"]) if host_unlisted(u.split("/", 1)[0], lists))
    neighbour = f"https://{entry.split('/', 1)[0]}/nordpipe-not-listed-page"
    assert fates(nordpipe_cli, tmp_path, "neighbour", [neighbour], "--no-datatrove-list")[neighbour] is None


def _datatrove_sample(count: int) -> tuple[list[str], list[str]]:
    """Domains and URLs from datatrove's bundled (UT1 adult) list: a seeded sample of the first
    entries of each member (the archive is read as a stream, not unpacked)."""
    rng = random.Random(5)
    picked: dict[str, list[str]] = {}
    with tarfile.open(datatrove_assets() / DATATROVE_LIST_ARCHIVE, "r:gz") as tar:
        for member in tar:
            if member.name in ("domains", "urls"):
                handle = tar.extractfile(member)
                assert handle is not None
                lines = []
                for line in io.TextIOWrapper(handle, encoding="utf-8"):
                    if not line.startswith("#") and line.strip():
                        lines.append(line.strip())
                    if len(lines) >= 20_000:
                        break
                picked[member.name] = rng.sample(lines, count)
    return picked["domains"], picked["urls"]


def test_adult_entries_are_removed_as_adult_and_nordic_news_kept(tmp_path: Path, nordpipe_cli: Any) -> None:
    domains, url_entries = _datatrove_sample(8)
    adult = {f"https://{d}/": "blocklist(adult)" for d in domains}
    adult |= {f"http://nordpipe-test-sub.{d}/video/1": "blocklist(adult)" for d in domains}
    adult_urls = [f"https://{u}" for u in url_entries]
    news = [f"https://www.{d}/" for d in NORDIC_NEWS] + [
        f"https://{d}/nyheder/2026/12/07/artikel-om-noget" for d in NORDIC_NEWS
    ]
    # Real news topics whose URLs hold words on datatrove's banned lists: kept on allowlisted sites.
    worded = ["https://www.dr.dk/nyheder/indland/bondage-klub-lukket-efter-klager",
              "https://www.aftonbladet.se/nyheter/a/escort-hardcore-fuck-dom",
              "https://yle.fi/a/74-20000000/porn-sivustot-ikavarmennus"]
    decided = fates(nordpipe_cli, tmp_path, "adult", [*adult, *adult_urls, *news, *worded])
    for url, reason in adult.items():
        assert decided[url] == f"urls:{reason}", url
    for url in adult_urls:  # URL entries: the URL, or its domain if that is listed too
        assert decided[url] in ("urls:url_list(adult)", "urls:blocklist(adult)"), url
    assert {url: decided[url] for url in news + worded} == dict.fromkeys(news + worded)
    # Without the Nordic exceptions, the banned words remove those articles: the allowlist kept them.
    plain = fates(nordpipe_cli, tmp_path, "plain", worded, "--no-nordic-exceptions")
    assert all(plain[url] in ("urls:banned_word", "urls:soft_banned_words") for url in worded), plain


def test_nordic_allowlist_is_on_no_list() -> None:
    """The allowlisted sites are not on any list today (the allowlist guards against list changes)."""
    from nordpipe.blocklists import NORDIC_ALLOWLIST_NAME, load_datatrove_lists

    allowed = read_list_file(shipped_blocklists() / NORDIC_ALLOWLIST_NAME, "allow")
    assert allowed.skipped == 0 and not allowed.urls and len(allowed.domains) > 90
    assert set(NORDIC_NEWS) <= set(allowed.domains)
    listed = set().union(*(e["domains"] for e in shipped_entries().values()))
    hosts = {u.split("/", 1)[0] for e in shipped_entries().values() for u in e["urls"]}
    adult = load_datatrove_lists().domains
    for domain in allowed.domains:
        assert domain not in listed and not adult.contains(domain), domain
        assert not any(h == domain or h.endswith("." + domain) for h in hosts), domain


# --------------------------------------------------------------------------------------------
# Parsing


TRICKY_LINES = ["a.com/", "a.com/x y", "A.com/x", "a.com:80/x", "-a.com/x", "a.com/x #c", "a.com", "a..com",
                "a.com/ä", "blåbær.dk", "blåbær.dk/x", "0.0.0.0 a.com", "||a.com^", "*.a.com", ".a.com", "a.com.",
                "a_b.com/x", "a.com/\x1cx", "a.com\x1c", "https://a.com/x", "a.com/x\ty", "   a.com   ", "# c", "! c",
                "[adblock]", "", "localhost", "1.2.3.4/x", "a.com//", "a-.com", "a.com/%20"]


def test_bulk_parse_equals_line_parser(tmp_path: Path) -> None:
    """``read_list_file`` takes plain lines in bulk: the same entries as ``parse_list_line``
    line by line, on every shipped line and on odd lines."""
    odd = tmp_path / "odd.txt"
    odd.write_text("\n".join(TRICKY_LINES) + "\r\nb.com\rc.com/y\n", encoding="utf-8")
    files = [odd, *sorted(shipped_blocklists().rglob("*.txt*"))]
    for path in files:
        if path.name in ("UT1-LICENSE.txt", "nordic_word_exceptions.txt"):
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", newline=None) as handle:
            lines = [line.strip() for line in handle]
        domains, urls, skipped = [], [], 0
        for line in lines:
            if not line or line.startswith(("#", "!", "[")):
                continue
            parsed = parse_list_line(line)
            if parsed is None:
                skipped += 1
            elif parsed[0] == "domain":
                domains.append(parsed[1])
            else:
                urls.append(parsed[1])
        got = read_list_file(path, "x")
        assert (sorted(got.domains), sorted(got.urls), got.skipped) == (sorted(domains), sorted(urls), skipped), path


# --------------------------------------------------------------------------------------------
# The shipped files are UT1's lines


def _import(ut1: Path, target: Path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "import_ut1.py"), str(ut1), "--version", "test",
                             "--target", str(target)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def _body(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if not line.startswith("#")]


def test_shipped_files_are_ut1_lines_unchanged(shared: Path, tmp_path: Path) -> None:
    ut1 = shared / "data" / "blocklists" / "ut1"
    for category, names in UT1_CATEGORIES.items():
        for name in names:
            expected = []
            for kind in ("domains", "urls"):
                if (ut1 / name / kind).is_file():
                    expected += (ut1 / name / kind).read_text(encoding="utf-8").splitlines()
            assert _body(shipped_blocklists() / category / f"ut1-{name}.txt.gz") == expected, name
    # The import script reproduces the shipped bytes (headers name the version, so compare bodies
    # and that gzip is deterministic: two imports give the same bytes).
    _import(ut1, tmp_path / "a")
    _import(ut1, tmp_path / "b")
    for path in (tmp_path / "a").rglob("*.gz"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
        assert _body(path) == _body(shipped_blocklists() / path.relative_to(tmp_path / "a"))


def test_import_script_on_a_synthetic_ut1_folder(tmp_path: Path) -> None:
    """Twin of the test above without ../shared: a made-up UT1 folder in, lists that parse out."""
    ut1 = tmp_path / "ut1"
    for name in {n for names in UT1_CATEGORIES.values() for n in names}:
        (ut1 / name).mkdir(parents=True)
        (ut1 / name / "domains").write_text(f"{name}-one.example.org\n{name}-two.example.net\n")
        if name != "stalkerware":
            (ut1 / name / "urls").write_text(f"{name}.example.com/page/1\n")
    _import(ut1, tmp_path / "out")
    for category, names in UT1_CATEGORIES.items():
        for name in names:
            parsed = read_list_file(tmp_path / "out" / category / f"ut1-{name}.txt.gz", category)
            assert sorted(parsed.domains) == sorted([f"{name}-one.example.org", f"{name}-two.example.net"])
            assert parsed.urls == ([] if name == "stalkerware" else [f"{name}.example.com/page/1"])
            assert parsed.skipped == 0
            with gzip.open(tmp_path / "out" / category / f"ut1-{name}.txt.gz", "rt", encoding="utf-8") as handle:
                header = [line for line in handle if line.startswith("#")]
            assert any("CC BY-SA 4.0" in line for line in header) and any(f"category {name}" in line for line in header)


# --------------------------------------------------------------------------------------------
# blocklists update with UT1 tarballs, against a local server


def ut1_tarball(category: str, domains: list[str], urls: list[str], link_to: str | None = None) -> bytes:
    """A UT1-like ``<category>.tar.gz``: ``<category>/domains``, ``urls`` and ``usage``; with
    ``link_to``, ``<category>`` holds symlinks to ``<link_to>/...`` (as UT1 has done)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        folder = link_to or category
        for name, text in (("domains", domains), ("urls", urls), ("usage", ["black", "white"])):
            data = "".join(f"{line}\n" for line in text).encode()
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            if link_to:
                link = tarfile.TarInfo(f"{category}/{name}")
                link.type = tarfile.SYMTYPE
                link.linkname = f"../{link_to}/{name}"
                tar.addfile(link)
    return buffer.getvalue()


class TarballServer:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = outer.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", '"' + hashlib.md5(body).hexdigest() + '"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def tarball_server() -> Iterator[TarballServer]:
    server = TarballServer({
        "/gambling.tar.gz": ut1_tarball("gambling", ["new-casino-nordpipe-test.com", "bet.example.org"],
                                        ["astrolabio.net/casino/"]),
        "/malware.tar.gz": ut1_tarball("malware", ["evil-download-nordpipe-test.com"], ["203.0.113.9/bin/x.exe"]),
        "/phishing.tar.gz": ut1_tarball("phishing", ["evil-download-nordpipe-test.com"], ["203.0.113.9/bin/x.exe"],
                                        link_to="malware"),
    })
    yield server
    server.server.shutdown()
    server.server.server_close()


def _sources(path: Path, base: str, names: list[str]) -> Path:
    category = {"gambling": "gambling", "malware": "malware", "phishing": "phishing", "readme": "scam"}
    path.write_text("".join(f'[[source]]\nname = "ut1-{n}"\ncategory = "{category[n]}"\nurl = "{base}/{n}.tar.gz"\n'
                            'format = "ut1"\n\n' for n in names))
    return path


def test_update_fetches_ut1_tarballs_and_replaces_the_shipped_copy(tarball_server: TarballServer, tmp_path: Path,
                                                                   nordpipe_cli: Any) -> None:
    store = tmp_path / "store"
    sources = _sources(tmp_path / "sources.toml", tarball_server.url, ["gambling", "malware", "phishing"])
    result = nordpipe_cli("blocklists", "update", "--sources", sources, "--store", store, "--json")
    assert result.returncode == 0, result.stderr
    reports = {r["list"]: r for r in json.loads(result.stdout)}
    assert reports["gambling/ut1-gambling"]["entries"] == 3 and reports["malware/ut1-malware"]["entries"] == 2
    assert reports["phishing/ut1-phishing"]["entries"] == 2  # the symlinked members were followed
    manifest = json.loads((store / "manifest.json").read_text())["lists"]["gambling/ut1-gambling"]
    assert manifest["format"] == "ut1"
    assert manifest["sha256"] == hashlib.sha256(tarball_server.files["/gambling.tar.gz"]).hexdigest()
    stored = (store / "gambling" / "ut1-gambling.txt").read_text().splitlines()
    assert stored[0].startswith("# UT1 ut1-gambling") and "usage" not in "".join(stored)
    assert [line for line in stored if not line.startswith("#")] == [
        "new-casino-nordpipe-test.com", "bet.example.org", "astrolabio.net/casino/"]
    assert not [p for p in store.rglob(".*") if p.name != ".lock"]  # no temp files left

    # filter urls: the store's ut1-gambling replaces the shipped one (a domain UT1 dropped is
    # kept), nordic.txt of the same category still applies, and phishing wins over malware.
    shipped_only = sorted(shipped_entries()["gambling"]["domains"])[0]
    urls = {"https://www.new-casino-nordpipe-test.com/": "urls:blocklist(gambling)",
            f"https://{shipped_only}/": None,
            "https://danskespil.dk/lotto": "urls:blocklist(gambling)",
            "https://evil-download-nordpipe-test.com/": "urls:blocklist(phishing)",
            "http://203.0.113.9/bin/x.exe": "urls:url_list(phishing)"}
    write_documents(tmp_path / "in", list(urls))
    result = nordpipe_cli("filter", "urls", tmp_path / "in", tmp_path / "out", "--store", store,
                          "--no-datatrove-list", "--keep-removed", "--json", "--max-removed-share", "1")
    assert result.returncode == 0, result.stderr
    decided = {}
    for folder in ("documents", "removed"):
        for path in (tmp_path / "out" / folder).glob("*.jsonl.gz"):
            with gzip.open(path, "rt") as handle:
                for record in map(decoded_line, handle):
                    decided[record["metadata"]["url"]] = record["metadata"].get("nordpipe", {}).get("removed")
    assert decided == urls
    # Without the store, the shipped list removes that domain.
    assert fates(nordpipe_cli, tmp_path, "shipped", [f"https://{shipped_only}/"], "--no-datatrove-list") == {
        f"https://{shipped_only}/": "urls:blocklist(gambling)"}


def test_update_offline_exits_1_and_keeps_the_previous_lists(tarball_server: TarballServer, tmp_path: Path,
                                                             nordpipe_cli: Any) -> None:
    store = tmp_path / "store"
    sources = _sources(tmp_path / "sources.toml", tarball_server.url, ["gambling", "malware"])
    assert nordpipe_cli("blocklists", "update", "--sources", sources, "--store", store).returncode == 0
    before = {p: p.read_bytes() for p in store.rglob("*.txt")}
    # Offline: a port nothing listens on (bound, then closed), so every connection is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = nordpipe_cli("blocklists", "update", "--sources", _sources(sources, dead, ["gambling", "malware"]),
                          "--store", store, "--timeout", "5")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "offline?" in result.stderr and "previous lists" in result.stderr and str(store) in result.stderr
    assert {p: p.read_bytes() for p in store.rglob("*.txt")} == before
    manifest = json.loads((store / "manifest.json").read_text())["lists"]
    assert "ConnectError" in manifest["gambling/ut1-gambling"]["last_error"]
    assert manifest["gambling/ut1-gambling"]["sha256"] == hashlib.sha256(
        tarball_server.files["/gambling.tar.gz"]).hexdigest()
    # A tarball without list members (not a UT1 category) fails, names the problem, stores nothing.
    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w:gz") as tar:
        info = tarfile.TarInfo("readme/usage")
        tar.addfile(info, io.BytesIO(b""))
    tarball_server.files["/readme.tar.gz"] = empty.getvalue()
    result = nordpipe_cli("blocklists", "update", "--sources",
                          _sources(tmp_path / "s2.toml", tarball_server.url, ["readme"]), "--store", store, "--json")
    assert result.returncode == 1
    assert "no domains or urls member" in json.loads(result.stdout)[0]["error"]
    assert "1 of 1 lists failed" in result.stderr
    assert not (store / "scam").exists() or not list((store / "scam").iterdir())


def test_adult_is_a_known_category_only_with_datatrove_list(tmp_path: Path) -> None:
    """``--category adult`` names datatrove's list (there is no shipped ``adult/`` folder): known
    while that list is in use, an unknown category without it."""
    from nordpipe.urls import UrlBlocklistFilter

    UrlBlocklistFilter(store=tmp_path / "store", categories=["adult", "gambling"])
    with pytest.raises(ValueError, match="'adult'"):
        UrlBlocklistFilter(datatrove_list=False, store=tmp_path / "store", categories=["adult"])
