import gzip

import pytest

from nordpipe.documents import (
    NORDPIPE_KEY,
    InvalidRecord,
    document_to_record,
    iter_jsonl_lines,
    iter_records,
    mark_removed,
    record_to_document,
    removal_reason,
    validate_record,
    write_records,
)


def test_round_trip_through_datatrove_document(make_records):
    record = make_records("a-1", "Hej verden", url="https://x.dk/")
    record["metadata"]["source"] = "kept-as-metadata"
    doc = record_to_document(record)
    assert doc.metadata["url"] == "https://x.dk/"
    assert doc.metadata["source"] == "test"  # top-level field wins in the flattened view
    mark_removed(doc, "x:y")
    back = document_to_record(doc)
    assert back["metadata"]["source"] == "kept-as-metadata"
    assert back["metadata"][NORDPIPE_KEY] == {"removed": "x:y"}
    assert {k: back[k] for k in ("id", "text", "source", "added", "created")} == {
        k: record[k] for k in ("id", "text", "source", "added", "created")
    }
    assert removal_reason(record_to_document(back)) == "x:y"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"text": "   \n "}, "empty text"),
        ({"text": "a\x00b"}, "NUL bytes"),
        ({"text": 5}, "wrong type"),
        ({"added": "2020/01/01"}, "bad date"),
        ({"created": "2020-01-01"}, "bad date"),
        ({"created": "2021-01-01, 2020-01-01"}, "bad date"),
        ({"metadata": []}, "wrong type"),
        ({"source": "other"}, "source mismatch"),
    ],
)
def test_validate_record_names_the_rule(make_records, change, reason):
    record = {**make_records("1", "tekst"), **change}
    with pytest.raises(InvalidRecord, match=reason):
        validate_record(record, source="test")


def test_validate_rejects_missing_field_and_giant_text(make_records):
    record = make_records("1", "x" * 101)
    del record["added"]
    with pytest.raises(InvalidRecord, match="missing field"):
        validate_record(record)
    with pytest.raises(InvalidRecord, match="text too long"):
        validate_record(make_records("1", "x" * 101), max_chars=100)


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst", ".jsonl", ".parquet"])
def test_write_and_read_every_format(tmp_path, make_records, suffix):
    records = [make_records(str(i), f"tekst {i}", n=i) for i in range(50)]
    path = str(tmp_path / f"x{suffix}")
    assert write_records(path, records) == 50
    assert [r for _, r in iter_records(path)] == records


def test_truncated_gzip_yields_good_lines_then_an_error(tmp_path, make_records):
    path = tmp_path / "t.jsonl.gz"
    write_records(str(path), [make_records(str(i), "a b c " * 200) for i in range(200)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    items = list(iter_jsonl_lines(str(path)))
    good = [i for i in items if i.error is None]
    assert 0 < len(good) < 200
    assert items[-1].error.startswith("broken compression")
    assert items[-1].line == good[-1].line + 1


def test_invalid_utf8_and_json_are_reported_per_line(tmp_path):
    path = tmp_path / "b.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b'{"a": 1}\n{"a": "\xff\xfe"}\n{oops\n')
    items = list(iter_jsonl_lines(str(path)))
    assert [i.line for i in items] == [1, 2, 3]
    assert items[0].record == {"a": 1}
    assert items[1].error.startswith("invalid UTF-8")
    assert items[2].error.startswith("invalid JSON")


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl", ".parquet"])
def test_metadata_is_a_json_string_on_disk_and_a_dict_in_memory(tmp_path, make_records, suffix):
    """Written: metadata as a JSON string (one schema whatever it holds); read: the dict again.
    Files with metadata as an object (REFERENCE §1, older nordpipe) read to the same records."""
    import orjson
    import pyarrow.parquet as pq

    records = [make_records("a", "Hej", url="https://x.dk/", nordpipe={"language": "da", "score": 0.5}),
               make_records("b", "Hallo", title="T", pages=3, tags=["x", "y"])]
    path = tmp_path / f"new{suffix}"
    write_records(str(path), records)
    if suffix == ".parquet":
        on_disk = pq.read_table(path).column("metadata").to_pylist()
    else:
        on_disk = [item.record["metadata"] for item in iter_jsonl_lines(str(path))]
    assert all(isinstance(m, str) for m in on_disk)
    assert [orjson.loads(m) for m in on_disk] == [r["metadata"] for r in records]
    assert [r for _, r in iter_records(str(path))] == records
    assert record_to_document({**records[0], "metadata": on_disk[0]}).metadata["url"] == "https://x.dk/"
    old = tmp_path / "old.jsonl"
    old.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    assert [r for _, r in iter_records(str(old))] == records


def test_a_metadata_string_that_is_not_an_object_fails_validation(make_records):
    from nordpipe.documents import decode_record

    for bad in ("[1, 2]", "{broken", "plain text"):
        record = decode_record({**make_records("a", "Hej"), "metadata": bad})
        with pytest.raises(InvalidRecord, match="metadata is a string that is not a JSON object"):
            validate_record(record)
