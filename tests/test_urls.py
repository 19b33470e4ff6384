"""URL blocklist filter: list formats, matching rules, Nordic exceptions, datatrove agreement, CLI."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest

from nordpipe.blocklists import parse_list_line
from nordpipe.documents import decode_record
from nordpipe.urls import DATATROVE_REASONS, UrlBlocklistFilter, parent_domains, url_host


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
    # (datatrove's list is UT1 adult: its reason names the category, blocklist(adult).)
    assert default.decide([url])[0][0] == "blocklist(adult)"
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
        removed = {r["id"]: r["metadata"]["nordpipe"] for r in (decode_record(json.loads(line)) for line in handle)}
    assert removed["d1"] == {"removed": "urls:blocklist(user)", "urls": {"matched": "blocked.dk"}}
    assert removed["d4"]["urls"] == {"matched": "porn"}
    # Usage errors exit 2, a missing list file exits 1.
    assert nordpipe_cli("filter", "urls", inp, tmp_path / "o2", "--consent-scope", "site").returncode == 2
    assert nordpipe_cli("filter", "urls", inp, tmp_path / "o3", "--blocklist", tmp_path / "nope.txt").returncode == 1


def tricky_urls() -> list[str]:
    """URLs that stress host parsing: schemes, user info, ports, IPv6, case, odd separators."""
    rng = random.Random(3)
    pieces = ["https://", "http://", "HTTP://", "ftp://", "//", "", "a+b.c-d://", "1x://", ":/", "x:/y//",
              "user@", "u:p@", "a@b@", "www.", "WWW.", "sub.", "ex-ample.co.uk", "dr.dk", "blåbær.dk", "[::1]",
              "[fe80::1", "127.0.0.1", ":8080", ".", "..", "/", "?q=1", "#frag", "/a//b", " ", "\t", "\n",
              "\u3002", "_x.", "k\u212a.dk", "porn", "Sex", "-"]
    return [
        "".join(rng.choice(pieces) for _ in range(rng.randint(1, 5))) for _ in range(6000)
    ] + ["https://www.dr.dk/a", "www.dr.dk", "https://a.b.c.d.e.f.g.h.example.com/", "http://x.dk:80/",
         "https://user@host.dk/"]


def test_bulk_host_parsing_matches_tldextract() -> None:
    """The polars host path must give tldextract's lenient host whenever it calls a host plain;
    every other URL goes to the Python path."""
    import polars as pl

    from nordpipe.urls import _AFTER_HOST, _PLAIN_HOST, _PLAIN_HOST_RE, _SCHEME, url_host

    urls = tricky_urls()
    hosts = pl.Series(urls).str.replace(_SCHEME, "").str.replace(_AFTER_HOST, "")
    plain = hosts.str.contains(_PLAIN_HOST_RE).to_list()
    assert sum(plain) > 200  # enough plain hosts to mean something
    for url, host, is_plain in zip(urls, hosts.to_list(), plain, strict=True):
        if is_plain:
            assert host == url_host(url), url
            assert _PLAIN_HOST.fullmatch(host)


def test_bulk_parent_domains_match_the_python_definition() -> None:
    import numpy as np
    import polars as pl

    from nordpipe.urls import _parent_domains_bulk

    hosts = ["a.b.example.co.uk", "dr.dk", "x.y.z.w.v.u.t.s.r.q.p", "www.dr.dk"]
    strings, owners, depths = _parent_domains_bulk(pl.Series(hosts), np.arange(len(hosts)))
    got: dict[int, list[tuple[int, str]]] = {}
    for string, owner, depth in zip(strings.to_list(), owners.tolist(), depths.tolist(), strict=True):
        got.setdefault(owner, []).append((depth, string))
    assert {o: [s for _, s in sorted(v)] for o, v in got.items()} == {
        number: parent_domains(host) for number, host in enumerate(hosts)
    }


def test_word_prefilters_flag_every_url_a_word_rule_removes() -> None:
    """The bulk prefilters may flag too much, never too little: compare with the rules run on
    every URL, including sub-words split by separators and upper case."""
    step = UrlBlocklistFilter(project_lists=False, datatrove_list=True, datatrove_compatible=True)
    step.load()
    rng = random.Random(11)
    subword = sorted(step._subword_list)
    pieces = ["nyheder", "sport", "-", "/", ".", "_", "%20", "æ", "porn", "Porn", "sex", "slut", "fag", "hot", "chat",
              *[w[: len(w) // 2] for w in subword[:20]], *[w[len(w) // 2:] for w in subword[:20]], *subword[:5],
              "BIG-TITS", "x-videos", "p.o.r.n.h.u.b"]
    urls = [f"https://site{n}.dk/" + "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8))) for n in range(5000)]
    exact = [step._word_rule(url, url_host(url)) for url in urls]
    assert sum(r is not None and r[0] == "banned_subword" for r in exact) > 50
    assert [r[0] if r else None for r in exact] == [d[0] for d in step.decide(urls)]


def test_bucketed_index_lookup_matches_membership() -> None:

    from nordpipe.blocklists import DomainIndex, hash_strings

    domains = [f"d{n}.example" for n in range(200_000)]
    index = DomainIndex.from_lists([("a", domains[:100_000]), ("b", domains[100_000:])])
    assert index._offsets is not None  # large enough for the bucket table
    queries = [f"d{n}.example" for n in range(0, 400_000, 7)] + ["", "example", "d1.example."]
    got = index.lookup(hash_strings(queries))
    expected = [0 if n < 100_000 else 1 if n < 200_000 else -1 for n in range(0, 400_000, 7)] + [-1, -1, -1]
    assert got.tolist() == expected
    small = DomainIndex.from_lists([("a", domains[:10])])
    assert small._offsets is None and small.lookup(hash_strings(domains[:12])).tolist() == [0] * 10 + [-1, -1]


def test_pipeline_run_marks_counts_and_skips_removed(tmp_path: Path) -> None:
    from datatrove.data import Document

    from nordpipe.documents import mark_removed, removal_reason

    step = own_filter(tmp_path, batch_size=3)
    docs = [Document(text="t", id=str(n), metadata={"url": url}) for n, url in enumerate(
        ["https://casino.example/", "https://dr.dk/", "   ", "https://blocked.dk/", "https://blocked.dk/x"])]
    docs.append(Document(text="t", id="no-url", metadata={}))
    docs.append(Document(text="t", id="surrogate", metadata={"url": "https://blocked.dk/\ud800"}))
    mark_removed(docs[4], "other:rule")
    out = list(step.run(iter(docs)))
    assert [d.id for d in out] == [d.id for d in docs]
    assert [removal_reason(d) for d in out] == ["urls:blocklist(gambling)", None, None, "urls:blocklist(user)",
                                                "other:rule", None, "urls:blocklist(user)"]
    stats = {k: v.total for k, v in step.stats.stats.items()}
    assert stats["kept"] == 3 and stats["removed"] == 3 and stats["skipped_already_removed"] == 1
    assert stats["removed:blocklist(user)"] == 2
