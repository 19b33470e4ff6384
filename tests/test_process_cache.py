"""Heavy read-only resources are loaded once per worker process and shared by its tasks
(``nordpipe.process_cache``); a changed list file is read again; outputs are unchanged."""

from __future__ import annotations

import copy
import gzip
import json
import os
from pathlib import Path
from typing import Any

from datatrove.data import Document

from nordpipe import process_cache
from nordpipe.langid import LanguageIdentifier
from nordpipe.pii.step import PiiReplace
from nordpipe.tokenize import TokenizeDocuments
from nordpipe.urls import UrlBlocklistFilter


def task_copy(step: Any) -> Any:
    """What a local worker gives each task: a deep copy of the pipeline as it was pickled."""
    return copy.deepcopy(step)


def url_docs(urls: list[str]) -> list[Document]:
    return [Document(text="tekst", id=str(n), metadata={"url": url}) for n, url in enumerate(urls)]


def test_url_lists_are_read_once_per_process_and_again_when_a_list_changes(tmp_path: Path) -> None:
    process_cache.clear()
    user = tmp_path / "user.txt"
    user.write_text("blocked.dk\n")
    step = UrlBlocklistFilter(datatrove_list=False, project_lists=False, blocklists=[user])
    urls = ["https://blocked.dk/a", "https://other.dk/b", "https://www.blocked.dk/c"]

    first, second = task_copy(step), task_copy(step)
    first_out = [d.metadata.get("nordpipe", {}).get("removed") for d in first.run(iter(url_docs(urls)))]
    second_out = [d.metadata.get("nordpipe", {}).get("removed") for d in second.run(iter(url_docs(urls)))]
    assert first_out == second_out
    assert [reason is not None for reason in first_out] == [True, False, True]
    # the second task did not read the lists: it holds the very objects the first one built
    assert second._own is first._own and second._url_hashes is first._url_hashes

    # the user edits the list between two tasks: the next task reads it again
    user.write_text("blocked.dk\nother.dk\n")
    os.utime(user, ns=(user.stat().st_atime_ns, user.stat().st_mtime_ns + 10**9))
    third = task_copy(step)
    third_out = [d.metadata.get("nordpipe", {}).get("removed") for d in third.run(iter(url_docs(urls)))]
    assert [reason is not None for reason in third_out] == [True, True, True]
    assert third._own is not first._own

    # another configuration in the same process gets its own lists
    allow = tmp_path / "allow.txt"
    allow.write_text("www.blocked.dk\n")
    other = task_copy(UrlBlocklistFilter(datatrove_list=False, project_lists=False, blocklists=[user], allowlists=[allow]))
    other_out = [d.metadata.get("nordpipe", {}).get("removed") for d in other.run(iter(url_docs(urls)))]
    assert [reason is not None for reason in other_out] == [True, True, False]


def test_the_cache_is_bounded_and_keeps_the_most_recent() -> None:
    process_cache.clear()
    built: list[int] = []
    for n in range(process_cache.MAX_ENTRIES + 3):
        process_cache.shared(("k", n), lambda n=n: built.append(n) or n)
    assert process_cache.shared(("k", process_cache.MAX_ENTRIES + 2), lambda: -1) == process_cache.MAX_ENTRIES + 2
    assert process_cache.shared(("k", 0), lambda: -1) == -1  # dropped (least recently used), built again
    assert built == list(range(process_cache.MAX_ENTRIES + 3))


def test_file_identity_changes_with_content_and_survives_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("a.dk\n")
    before = process_cache.file_identity(path)
    path.write_text("a.dk\nb.dk\n")
    assert process_cache.file_identity(path) != before
    assert process_cache.file_identity(tmp_path / "missing.txt")[1:] == (-1, -1)
    assert process_cache.file_identity("s3://bucket/list.txt") == ("s3://bucket/list.txt", -1, -1)


def test_language_id_pii_scanner_and_tokenizer_are_shared_by_task_copies() -> None:
    process_cache.clear()
    identifier = LanguageIdentifier(languages=["da", "nb", "nn", "sv", "fo"])
    a, b = task_copy(identifier), task_copy(identifier)
    faroese = "Kommunan hevur gjørt av at umvæla gamla skúlan í komandi tveimum árunum, og næmingarnir gleða seg til."
    assert a.identify(faroese)[0] == b.identify(faroese)[0] == "fo"
    assert a._langid is b._langid is not None

    pii = PiiReplace()
    first, second = task_copy(pii), task_copy(pii)
    assert first.scanner() is second.scanner()
    assert task_copy(PiiReplace(entities=["EMAIL"])).scanner() is not first.scanner()
    text = "Skriv til mette@example.dk eller ring 21 43 65 87."
    assert [s.entity for s in first.scanner().scan(text)] == [s.entity for s in second.scanner().scan(text)] == ["EMAIL", "PHONE"]

    tokenize = TokenizeDocuments()
    one, two = task_copy(tokenize), task_copy(tokenize)
    assert one.tokenizer is two.tokenizer
    assert one.tokenizer.encode_batch(["Hej verden"]) == two.tokenizer.encode_batch(["Hej verden"])


def test_a_many_task_run_writes_what_one_task_per_process_writes(tmp_path: Path, nordpipe_cli: Any,
                                                                  make_records: Any) -> None:
    """Six input files are six tasks on one worker, which shares the lists: the kept and removed
    documents equal those of running each file in a process of its own."""
    blocklist = tmp_path / "block.txt"
    blocklist.write_text("casino.example\n")
    data = tmp_path / "in"
    data.mkdir()
    for n in range(6):
        records = [make_records(f"f{n}-{i}", "Tekst om noget.", url=f"https://{'casino' if i % 3 == 0 else 'dr'}.example/{n}/{i}")
                   for i in range(9)]
        with gzip.open(data / f"part-{n}.jsonl.gz", "wt") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in records)
    out = tmp_path / "out"
    nordpipe_cli("filter", "urls", data, out, "--blocklist", blocklist, "--workers", "1", "--keep-removed", check=True)

    def ids(folder: Path) -> set[str]:
        return {json.loads(line)["id"] for path in folder.glob("*.jsonl.gz") for line in gzip.open(path, "rt")}

    separate_kept: set[str] = set()
    separate_removed: set[str] = set()
    for n in range(6):
        single_in = tmp_path / f"single-in-{n}"
        single_in.mkdir()
        (single_in / f"part-{n}.jsonl.gz").write_bytes((data / f"part-{n}.jsonl.gz").read_bytes())
        single_out = tmp_path / f"single-out-{n}"
        nordpipe_cli("filter", "urls", single_in, single_out, "--blocklist", blocklist, "--keep-removed", check=True)
        separate_kept |= ids(single_out / "documents")
        separate_removed |= ids(single_out / "removed")
    assert ids(out / "documents") == separate_kept and len(separate_kept) == 36
    assert ids(out / "removed") == separate_removed and len(separate_removed) == 18
