"""Ingest never loses a readable record, never holds a giant record in memory, fails loudly.

Each test writes a damaged raw file, runs the real ingest (the ``nordpipe`` CLI or ``ingest()``)
and checks that every readable record reaches ``documents/`` and that the damage is in
``quarantine/`` with its file, line, reason and, for broken binary spans, byte offsets.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from nordpipe.documents import iter_document_lines, iter_jsonl_lines
from nordpipe.ingest import ConfigError, IngestConfig, MissingDateError, ingest


def _run(cli: Any, raw: Path, out: Path, *flags: str, dataset: str = "ds") -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Ingest ``raw`` with the CLI; return the kept records by id and the quarantine entries."""
    cli("ingest", raw, "--dataset", dataset, "--output", out, *flags, check=True)
    folder = out / dataset
    kept = {
        item.record["id"]: item.record
        for f in sorted((folder / "documents").glob("*.jsonl.gz"))
        for item in iter_document_lines(str(f))
    }
    quarantined = [json.loads(line) for f in sorted((folder / "quarantine").glob("*.jsonl")) for line in f.read_text().splitlines()]
    return kept, sorted(quarantined, key=lambda q: (q["file"], q["line"]))


def _jsonl(prefix: str, n: int) -> bytes:
    return b"".join(
        orjson.dumps({"id": f"{prefix}{i}", "text": f"Tekst {prefix} nummer {i} om vejret.", "created": "2021-03-04"}) + b"\n"
        for i in range(n)
    )


# --------------------------------------------------------------------------------------------
# CSV


def test_csv_invalid_byte_quarantines_only_its_row(tmp_path, nordpipe_cli):
    raw = tmp_path / "forum.csv"
    rows = [b"id,text,created"] + [f"p{i},Indlæg {i} om Aarhus,2020-05-0{i + 1}".encode() for i in range(6)]
    rows[4] = b"p3,Indl\xe6g 3 i latin-1,2020-05-04"  # line 5
    raw.write_bytes(b"\r\n".join(rows) + b"\r\n")
    kept, quarantined = _run(nordpipe_cli, raw, tmp_path / "out", "--id-field", "id")
    assert sorted(kept) == ["p0", "p1", "p2", "p4", "p5"]
    assert kept["p5"]["text"] == "Indlæg 5 om Aarhus"
    assert len(quarantined) == 1
    entry = quarantined[0]
    assert entry["line"] == 5 and entry["reason"].startswith("invalid UTF-8: line 5")
    assert entry["raw_base64"]  # the row's bytes, losslessly


def test_csv_with_bom_reads_every_row(tmp_path, nordpipe_cli):
    raw = tmp_path / "bom.csv"
    raw.write_bytes(b"\xef\xbb\xbfid,text,created\n" + b"".join(f"b{i},Tekst {i},2019\n".encode() for i in range(4)))
    kept, quarantined = _run(nordpipe_cli, raw, tmp_path / "out", "--id-field", "id")
    assert quarantined == []
    assert sorted(kept) == ["b0", "b1", "b2", "b3"]
    assert kept["b0"]["created"] == "2019-01-01, 2019-12-31"
    assert "\ufeffid" not in kept["b0"]["metadata"]


def test_csv_unbalanced_quote_is_reported_not_merged(tmp_path, nordpipe_cli):
    raw = tmp_path / "quotes.csv"
    lines = [
        "id,text,created",
        'q0,"Et citat, med komma",2020',
        'q1,"Her mangler slutcitat,2020',  # line 3: the quote never closes
        "q2,Tredje række,2020",
        'q3,"En ""rigtig"" række\nmed linjeskift",2020',  # lines 5-6: a legitimate multi-line field
        "q4,Sidste række,2020",
    ]
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    kept, quarantined = _run(nordpipe_cli, raw, tmp_path / "out", "--id-field", "id")
    assert sorted(kept) == ["q0", "q2", "q3", "q4"]
    assert kept["q3"]["text"] == 'En "rigtig" række\nmed linjeskift'
    assert [(q["line"], q["reason"].split(":")[0]) for q in quarantined] == [(3, "unbalanced quote")]
    assert "line 3" in quarantined[0]["reason"]
    assert quarantined[0]["raw"] == 'q1,"Her mangler slutcitat,2020'


def test_csv_quote_open_at_end_of_file(tmp_path, nordpipe_cli):
    raw = tmp_path / "tail.csv"
    raw.write_text('id,text,created\nt0,God,2020\nt1,"Åben\nt2,Også god,2020\n', encoding="utf-8")
    kept, quarantined = _run(nordpipe_cli, raw, tmp_path / "out", "--id-field", "id")
    assert sorted(kept) == ["t0", "t2"]
    assert [(q["line"], q["reason"].split(":")[0]) for q in quarantined] == [(3, "unbalanced quote")]


# --------------------------------------------------------------------------------------------
# Compressed streams, parquet, WARC


def test_gzip_garbage_between_members_and_truncated_tail(tmp_path, nordpipe_cli):
    a, b, c = gzip.compress(_jsonl("a", 50)), gzip.compress(_jsonl("b", 50)), gzip.compress(_jsonl("c", 2000))
    garbage = b"\x00junk that is not gzip\x00" * 3
    data = a + garbage + b + c[: len(c) // 2]
    raw = tmp_path / "dump.jsonl.gz"
    raw.write_bytes(data)
    kept, quarantined = _run(nordpipe_cli, raw, tmp_path / "out")
    texts = {r["text"] for r in kept.values()}
    assert all(f"Tekst a nummer {i} om vejret." in texts for i in range(50))
    assert all(f"Tekst b nummer {i} om vejret." in texts for i in range(50))  # read after the garbage
    survivors_c = sum(1 for t in texts if t.startswith("Tekst c"))
    assert 0 < survivors_c < 2000  # the part of the truncated member before the cut
    reasons = [q["reason"] for q in quarantined]
    assert len(quarantined) == 2, reasons
    junk, cut = quarantined
    assert junk["reason"].startswith("broken compression: not gzip data")
    assert (junk["byte_offset"], junk["bytes"]) == (len(a), len(garbage))
    assert junk["line"] == 51
    assert cut["reason"].startswith("broken compression: truncated")
    assert cut["byte_offset"] == len(a) + len(garbage) + len(b)
    assert cut["line"] == 51 + 50 + survivors_c + 1


def test_zstd_corrupt_frame_is_skipped_and_the_next_frame_read(tmp_path, nordpipe_cli):
    compressor = zstandard.ZstdCompressor(write_checksum=True)
    a, b, c = (compressor.compress(_jsonl(p, 200)) for p in "abc")
    broken = bytearray(b)
    broken[len(b) // 2 : len(b) // 2 + 16] = b"\x00" * 16
    raw = tmp_path / "dump.jsonl.zst"
    raw.write_bytes(a + bytes(broken) + c)
    kept, quarantined = _run(nordpipe_cli, raw, tmp_path / "out")
    texts = {r["text"] for r in kept.values()}
    assert all(f"Tekst a nummer {i} om vejret." in texts for i in range(200))
    assert all(f"Tekst c nummer {i} om vejret." in texts for i in range(200))
    damage = [q for q in quarantined if q["reason"].startswith("broken compression")]
    assert len(damage) == 1
    assert (damage[0]["byte_offset"], damage[0]["bytes"]) == (len(a), len(b))


def test_zstd_truncated_stream_is_not_silent(tmp_path):
    data = zstandard.ZstdCompressor().compress(_jsonl("a", 3000))
    path = tmp_path / "cut.jsonl.zst"
    path.write_bytes(data[: len(data) // 2])
    items = list(iter_jsonl_lines(str(path)))
    assert items[-1].error.startswith("broken compression: truncated")
    assert items[-1].offset == 0 and items[-1].length == len(data) // 2


def test_parquet_corrupt_row_group_is_quarantined_others_kept(tmp_path, nordpipe_cli):
    rows = [{"id": f"r{i}", "text": f"Række {i} med tekst.", "created": "2022-01-01"} for i in range(30)]
    path = tmp_path / "table.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=10, compression="none", use_dictionary=False)
    meta = pq.ParquetFile(path).metadata
    group = meta.row_group(1)
    start = min(group.column(i).data_page_offset for i in range(group.num_columns))
    data = bytearray(path.read_bytes())
    data[start : start + 24] = b"\xff" * 24  # the page header of the second row group
    path.write_bytes(bytes(data))
    kept, quarantined = _run(nordpipe_cli, path, tmp_path / "out")
    texts = sorted(r["text"] for r in kept.values())
    assert texts == sorted(f"Række {i} med tekst." for i in [*range(10), *range(20, 30)])
    # rows after the broken group keep their row numbers, hence their ids
    assert "ds-table-21" in kept and kept["ds-table-21"]["text"] == "Række 20 med tekst."
    assert len(quarantined) == 1
    entry = quarantined[0]
    assert entry["line"] == 11 and "row group 1 (rows 11-20" in entry["reason"]
    assert entry["byte_offset"] == start and entry["bytes"] > 0


def _warc_gz(path: Path, n: int) -> list[int]:
    """A .warc.gz of ``n`` HTML responses; returns each record's (gzip member's) byte offset."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    offsets = []
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for i in range(n):
            offsets.append(handle.tell())
            body = f"<html><body><article><h1>Side {i}</h1><p>Dette er side nummer {i} om vejret i Aarhus og omegn.</p><p>Mere tekst om byen nummer {i}.</p></article></body></html>"
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            record = writer.create_warc_record(f"https://side{i}.dk/", "response", payload=io.BytesIO(body.encode()),
                                               http_headers=http, warc_headers_dict={"WARC-Date": "2023-05-01T12:00:00Z"})
            writer.write_record(record)
    return offsets


def _damage_member(path: Path, start: int, end: int) -> None:
    data = bytearray(path.read_bytes())
    middle = (start + end) // 2
    data[middle : middle + 8] = b"\xa5" * 8
    path.write_bytes(bytes(data))


def test_warc_corrupt_member_is_quarantined_and_reading_resumes(tmp_path, nordpipe_cli):
    path = tmp_path / "crawl.warc.gz"
    offsets = _warc_gz(path, 6)
    offsets.append(path.stat().st_size)
    _damage_member(path, offsets[2], offsets[3])
    kept, quarantined = _run(nordpipe_cli, path, tmp_path / "out")
    urls = sorted(r["metadata"]["url"] for r in kept.values())
    assert urls == [f"https://side{i}.dk/" for i in (0, 1, 3, 4, 5)]
    assert len(quarantined) == 1
    entry = quarantined[0]
    assert entry["reason"].startswith("broken file:")
    assert (entry["byte_offset"], entry["bytes"]) == (offsets[2], offsets[3] - offsets[2])


def test_real_warc_sample_with_a_corrupt_member(tmp_path, nordpipe_cli, shared):
    from warcio.archiveiterator import ArchiveIterator

    source = shared / "data" / "warc" / "dolma-sample-0000.warc.gz"
    if not source.exists():
        pytest.skip("dolma-sample-0000.warc.gz not present")
    clean, _ = _run(nordpipe_cli, source, tmp_path / "clean")
    with open(source, "rb") as handle:
        iterator = ArchiveIterator(handle)
        spans = []
        for record in iterator:
            record.content_stream().read()
            iterator.read_to_end()
            spans.append((iterator.get_record_offset(), iterator.get_record_length(), record.rec_type))
    responses = [s for s in spans if s[2] == "response"]
    start, length, _ = responses[len(responses) // 2]
    damaged = tmp_path / "dolma-damaged.warc.gz"
    damaged.write_bytes(source.read_bytes())
    _damage_member(damaged, start, start + length)
    kept, quarantined = _run(nordpipe_cli, damaged, tmp_path / "out")
    assert len(clean) - 1 <= len(kept) < len(clean) + 1
    assert set(kept) <= set(clean)
    broken = [q for q in quarantined if q["reason"].startswith("broken file")]
    assert len(broken) == 1 and broken[0]["byte_offset"] == start


# --------------------------------------------------------------------------------------------
# Giant lines, deep nesting


def test_huge_line_is_skipped_in_bounded_memory(tmp_path):
    huge = 400_000_000
    path = tmp_path / "huge.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(orjson.dumps({"id": "first", "text": "Før den store linje.", "created": "2020"}) + b"\n")
        handle.write(b'{"id": "huge", "created": "2020", "text": "')
        block = b"a" * (1 << 22)
        for _ in range(huge // len(block)):
            handle.write(block)
        handle.write(b'"}\n')
        handle.write(orjson.dumps({"id": "last", "text": "Efter den store linje.", "created": "2020"}) + b"\n")
    line_size = len(b'{"id": "huge", "created": "2020", "text": "') + (huge // (1 << 22)) * (1 << 22) + 2
    out = tmp_path / "out"
    script = (
        "import resource, sys, json\n"
        "from nordpipe.ingest import IngestConfig, ingest\n"
        "from nordpipe.runner import RunOptions\n"
        f"ingest([{str(path)!r}], IngestConfig(dataset='big', id_field='id', max_chars=1000), {str(out)!r}, RunOptions())\n"
        # VmHWM, not RUSAGE_SELF: Linux carries ru_maxrss over exec, so a child of a large pytest
        # process would report pytest's size; the task runs in a worker, hence RUSAGE_CHILDREN too
        "own = max(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "print(max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    peak_mb = int(result.stdout.split()[-1]) / 1024
    print(f"peak RSS of the ingest process and its workers: {peak_mb:.0f} MB for a {line_size / 1e6:.0f} MB line")
    assert peak_mb < 400, f"peak RSS {peak_mb:.0f} MB for a {huge / 1e6:.0f} MB line"
    kept = [item.record["id"] for f in (out / "big" / "documents").glob("*.jsonl.gz") for item in iter_jsonl_lines(str(f))]
    assert sorted(kept) == ["first", "last"]
    (entry,) = [json.loads(line) for f in (out / "big" / "quarantine").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert entry["line"] == 2
    assert entry["reason"].startswith(f"too long: line of {line_size:,} bytes")


def test_iter_jsonl_lines_caps_line_size(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "' + b"x" * 5000 + b'"}\n{"c": 3}\n{"d": "' + b"y" * 3000)
    items = list(iter_jsonl_lines(str(path), max_line_bytes=1000))
    assert [(i.line, i.record, (i.error or "")[:9]) for i in items] == [
        (1, {"a": 1}, ""), (2, None, "too long:"), (3, {"c": 3}, ""), (4, None, "too long:"),
    ]
    assert [i.line for i in iter_jsonl_lines(str(path))] == [1, 2, 3, 4]  # default: no cap


def test_deeply_nested_records_are_quarantined_with_their_line(tmp_path, nordpipe_cli):
    def nested(depth: int) -> str:
        return "[" * depth + "]" * depth

    raw = tmp_path / "deep.jsonl"
    raw.write_text(
        "\n".join([
            '{"id": "ok1", "text": "Første", "created": "2020"}',
            '{"id": "deep1000", "text": "Dyb", "created": "2020", "tree": ' + nested(1000) + "}",
            '{"id": "deep5000", "text": "Dybere", "created": "2020", "tree": ' + nested(5000) + "}",
            '{"id": "ok2", "text": "Sidste", "created": "2020"}',
        ]) + "\n"
    )
    result = nordpipe_cli("ingest", raw, "--dataset", "ds", "--output", tmp_path / "out", "--id-field", "id")
    assert result.returncode == 0, result.stderr
    kept, quarantined = _run(nordpipe_cli, raw, tmp_path / "out", "--id-field", "id")
    assert sorted(kept) == ["ok1", "ok2"]
    assert [(q["line"], q["reason"].split(":")[0]) for q in quarantined] == [(2, "too deep"), (3, "too deep")]
    assert quarantined[0]["raw"].startswith('{"id": "deep1000"')


# --------------------------------------------------------------------------------------------
# Input already in the standardized format; no date at all


def test_standardized_input_is_kept_as_it_is(tmp_path, nordpipe_cli):
    records = [
        {"id": f"doc-{i}", "text": f"Standardiseret tekst {i}.", "source": "old", "added": "2023-02-03",
         "created": "2001-01-01, 2001-12-31", "metadata": {"url": f"https://x{i}.dk/", "nested": {"k": i}}}
        for i in range(5)
    ]
    duplicate = {**records[1], "text": "Samme id igen."}
    bad_date = {**records[0], "id": "doc-bad", "created": "2001-13-01, 2001-12-31"}
    raw = tmp_path / "std.jsonl"
    raw.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in [*records, duplicate, bad_date]))
    kept, quarantined = _run(nordpipe_cli, raw, tmp_path / "out", dataset="std")
    assert sorted(kept) == [r["id"] for r in records]
    for r in records:
        got = kept[r["id"]]
        assert (got["added"], got["created"], got["text"]) == (r["added"], r["created"], r["text"])
        assert got["source"] == "std"
        assert got["metadata"] == {**r["metadata"], "source": "old"}
    assert [(q["line"], q["reason"].split(":")[0]) for q in quarantined] == [(6, "duplicate id"), (7, "bad date")]


def test_no_date_source_fails_up_front_with_exit_2(tmp_path, nordpipe_cli):
    raw = tmp_path / "nodate.jsonl"
    raw.write_text("".join(json.dumps({"text": f"Tekst {i} uden dato."}) + "\n" for i in range(5)))
    result = nordpipe_cli("ingest", raw, "--dataset", "nd", "--output", tmp_path / "out")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--created" in result.stderr
    assert not (tmp_path / "out" / "nd" / "documents").exists()
    letters = tmp_path / "letters"
    letters.mkdir()
    (letters / "a.txt").write_text("Kære ven.", encoding="utf-8")
    result = nordpipe_cli("ingest", letters, "--dataset", "nd", "--output", tmp_path / "out")
    assert result.returncode == 2 and "--created" in result.stderr
    with pytest.raises(ConfigError, match="--created"):
        ingest([str(raw)], IngestConfig(dataset="nd"), str(tmp_path / "lib"))
    with pytest.raises(MissingDateError):
        ingest([str(raw)], IngestConfig(dataset="nd", created_field="date"), str(tmp_path / "lib"))
    # with --created the same input ingests
    kept, quarantined = _run(nordpipe_cli, raw, tmp_path / "ok", "--created", "2020")
    assert len(kept) == 5 and quarantined == []

