"""URL blocklist filter: list formats, matching rules, Nordic exceptions, datatrove agreement, CLI."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest

from nordpipe.blocklists import parse_list_line
from nordpipe.urls import DATATROVE_REASONS, UrlBlocklistFilter, parent_domains


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("example.com", ("domain", "example.com")),
        ("  Example.COM.  ", ("domain", "example.com")),
        ("*.example.com", ("domain", "example.com")),
        ("0.0.0.0 ads.example.com", ("domain", "ads.example.com")),
        ("127.0.0.1 localhost", None),
        ("||tracker.example.org^", ("domain", "tracker.example.org")),
        ("||tracker.example.org^$third-party", ("domain", "tracker.example.org")),
        ("||example.org/path*", None),
        ("https://example.com/a/b?c=1", ("url", "example.com/a/b?c=1")),
        ("example.com/a", ("url", "example.com/a")),
        ("blåbær.dk", ("domain", "xn--blbr-roah.dk")),
        ("# comment", None),
        ("! adblock comment", None),
        ("not a domain!", None),
        ("a.dk # trailing comment", ("domain", "a.dk")),
    ],
)
def test_list_line_formats(line: str, parsed: tuple[str, str] | None) -> None:
    assert parse_list_line(line) == parsed


def test_parent_domains() -> None:
    assert parent_domains("a.b.example.co.uk") == ["a.b.example.co.uk", "b.example.co.uk", "example.co.uk", "co.uk"]
    assert parent_domains("localhost") == []


def own_filter(tmp_path: Path, **kwargs: Any) -> UrlBlocklistFilter:
    lists = tmp_path / "lists"
    (lists / "gambling").mkdir(parents=True, exist_ok=True)
    (lists / "gambling" / "x.txt").write_text("casino.example\n0.0.0.0 bet.example.org\n")
    (lists / "phishing").mkdir(exist_ok=True)
    (lists / "phishing" / "y.txt").write_text("||login-bank.example^\nshop.example/fake-offer\n")
    user = tmp_path / "user.txt"
    user.write_text("blocked.dk\n")
    allow = tmp_path / "allow.txt"
    allow.write_text("good.casino.example\n")
    return UrlBlocklistFilter(datatrove_list=False, blocklists_dir=lists, store=tmp_path / "empty-store",
                              blocklists=[user], allowlists=[allow], **kwargs)


def test_domains_match_themselves_and_all_subdomains(tmp_path: Path) -> None:
    step = own_filter(tmp_path)
    urls = {
        "https://casino.example/": "blocklist(gambling)",
        "https://www.casino.example/a": "blocklist(gambling)",
        "https://a.b.c.casino.example/a": "blocklist(gambling)",
        "https://notcasino.example/": None,  # a suffix, but not at a label boundary
        "https://bet.example.org/": "blocklist(gambling)",
        "https://LOGIN-BANK.example/x": "blocklist(phishing)",
        "https://blocked.dk/side": "blocklist(user)",
        "https://good.casino.example/": None,  # the allowlist overrides
        "https://x.good.casino.example/": None,
        "http://shop.example/fake-offer": "url_list(phishing)",
        "http://shop.example/real-offer": None,
        "https://nyheder.dk/artikel": None,
    }
    decisions = step.decide(list(urls))
    assert [d[0] for d in decisions] == list(urls.values())
    assert decisions[2] == ("blocklist(gambling)", "casino.example")


def test_documents_without_url(tmp_path: Path) -> None:
    assert own_filter(tmp_path).decide([None]) == [(None, None)]
    assert own_filter(tmp_path, require_url=True).decide([None]) == [("no_url", None)]


def test_nordic_exceptions_only_on_nordic_hosts() -> None:
    step = UrlBlocklistFilter(project_lists=False)
    plain = UrlBlocklistFilter(project_lists=False, nordic_exceptions=False)
    urls = ["https://www.bolig.dk/til-slut-et-hus", "https://www.bolig.com/til-slut-et-hus",
            "https://skola.se/klass-sex/fag", "https://skola.com/klass-sex/fag", "https://x.dk/porn"]
    assert [d[0] for d in step.decide(urls)] == [None, "banned_word", None, "soft_banned_words", "banned_word"]
    assert [d[0] for d in plain.decide(urls)] == ["banned_word", "banned_word", "soft_banned_words",
                                                 "soft_banned_words", "banned_word"]


def test_default_mode_differs_from_datatrove_only_where_documented() -> None:
    default = UrlBlocklistFilter(project_lists=False)
    compatible = UrlBlocklistFilter(project_lists=False, datatrove_compatible=True)
    # "sex.pl" is on datatrove's list and is a public suffix: datatrove never matches it.
    url = "https://foo.sex.pl/"
    assert default.decide([url])[0][0] == "blocklist(datatrove)"
    assert compatible.decide([url])[0][0] is None
    # datatrove's URL list holds URLs without scheme; it compares whole strings.
    listed = "https://10000_gratis_sexfoto.jouwpagina.nl"
    assert default.decide([listed])[0][0] is not None


def sample_urls(count: int, seed: int = 7) -> list[str]:
    """URLs on listed domains (and their subdomains), word hits, Nordic and odd hosts."""
    from nordpipe.blocklists import DATATROVE_LIST_ARCHIVE, datatrove_assets

    rng = random.Random(seed)
    import tarfile

    listed: list[str] = []
    with tarfile.open(datatrove_assets() / DATATROVE_LIST_ARCHIVE) as tar:
        member = tar.extractfile("domains")
        assert member is not None
        for number, line in enumerate(member):
            if number % 997 == 0:
                listed.append(line.decode().strip())
            if len(listed) >= 2000:
                break
    words = ["nyheder", "sport", "slut", "fag", "sex", "porn", "Porn", "hot-chat", "escort", "naked", "side"]
    hosts = ["www.dr.dk", "politiken.dk", "vg.no", "svt.se", "yle.fi", "ruv.is", "127.0.0.1", "localhost",
             "WWW.Example.COM", "xn--blbr-roah.dk", "blåbær.dk", "a..b.com", "[::1]"]
    urls = []
    for number in range(count):
        host = rng.choice(["", "www.", "a.b."]) + rng.choice(listed) if rng.random() < 0.3 else rng.choice(hosts)
        path = "/".join(rng.choice(words) for _ in range(rng.randint(0, 3)))
        scheme = rng.choice(["https://", "http://", "", "//"])
        urls.append(f"{scheme}{host}/{path}?n={number}")
    return urls


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # datatrove reads a deprecated tldextract property
def test_compatible_mode_agrees_with_datatrove_url_filter() -> None:
    from datatrove.data import Document
    from datatrove.pipeline.filters import URLFilter
    from tldextract import TLDExtract

    urls = sample_urls(6000)
    peer = URLFilter()
    peer.tldextractor = TLDExtract(suffix_list_urls=())  # no network at run time, same PSL snapshot as ours
    theirs = []
    for url in urls:
        verdict = peer.filter(Document(text="x", id="1", metadata={"url": url}))
        theirs.append(None if verdict is True else DATATROVE_REASONS[verdict[1]])
    ours = [rule for rule, _ in UrlBlocklistFilter(project_lists=False, datatrove_compatible=True).decide(urls)]
    assert sum(r is not None for r in theirs) > 1000  # the sample exercises the rules
    assert ours == theirs


def test_filter_urls_cli(tmp_path: Path, nordpipe_cli: Any, make_records: Any) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    urls = ["https://www.dr.dk/nyheder/1", "https://sub.blocked.dk/x", None, "https://x.dk/til/slut",
            "https://foo.com/porn/video", "https://danskespil.dk/lotto"]
    with gzip.open(inp / "00000.jsonl.gz", "wt") as handle:
        for number, url in enumerate(urls):
            meta = {"url": url} if url else {}
            handle.write(json.dumps(make_records(f"d{number}", "Et stykke tekst.", **meta)) + "\n")
    user = tmp_path / "user.txt"
    user.write_text("||blocked.dk^\n")
    out = tmp_path / "out"
    result = nordpipe_cli("filter", "urls", inp, out, "--blocklist", user, "--keep-removed", "--require-url", "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["removed"] == {"urls:blocklist(user)": 1, "urls:no_url": 1, "urls:banned_word": 1,
                                "urls:blocklist(gambling)": 1}
    assert stats["documents_out"] == 2
    with gzip.open(out / "removed" / "00000.jsonl.gz", "rt") as handle:
        removed = {r["id"]: r["metadata"]["nordpipe"] for r in map(json.loads, handle)}
    assert removed["d1"] == {"removed": "urls:blocklist(user)", "urls": {"matched": "blocked.dk"}}
    assert removed["d4"]["urls"] == {"matched": "porn"}
    # Usage errors exit 2, a missing list file exits 1.
    assert nordpipe_cli("filter", "urls", inp, tmp_path / "o2", "--consent-scope", "site").returncode == 2
    assert nordpipe_cli("filter", "urls", inp, tmp_path / "o3", "--blocklist", tmp_path / "nope.txt").returncode == 1
