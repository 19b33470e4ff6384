"""Stage outputs and the published corpus load where users load them.

A root of three sources whose metadata have different fields (and whose documents get different
``metadata.nordpipe`` entries from the stages) goes through real stages by the CLI (ingest,
dedup lines, pii, export hf); then every output is loaded with the real ``datasets`` (also
streaming, in a subprocess with the offline switches set before import), polars and duckdb, and
the dataset card is parsed by ``huggingface_hub``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import nordpipe_executable

from nordpipe.documents import decode_record, iter_records

WORDS = ["hus", "skov", "mand", "kvinde", "bil", "by", "land", "vand", "sol", "regn", "dag", "nat", "arbejde", "skole", "bog", "brev", "vej", "havn", "mark", "fjeld", "sø", "elv", "båt", "hav", "hjem", "fest", "mad", "kaffe", "tog", "bus", "cykel", "vinter", "sommer"]
SOURCES = {
    # source: (language, license, metadata of document n)
    "nyheder": ("da", "cc0-1.0", lambda n: {"url": f"https://nyheder.dk/artikel/{n}", "title": f"Artikel {n}"}),
    "forum": ("nb", "cc-by-4.0", lambda n: {"thread_id": n // 3, "author": f"bruker{n % 7}", "score": n * 0.5}),
    "bog": ("sv", "other", lambda n: {"isbn": f"978-91-{n:05d}", "pages": 100 + n, "subjects": ["roman", "historia"][: n % 3]}),
}
DOCS_PER_SOURCE = 40
BOILERPLATE = "Læs også: vores nyhedsbrev om alt det vigtige hver eneste uge."


def _text(rng: random.Random, n: int) -> str:
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "." for _ in range(rng.randint(3, 8))]
    if n % 4 == 0:
        lines.append(BOILERPLATE)  # a repeated line: dedup lines marks these documents only
    if n % 5 == 0:
        lines.append(f"Skriv til person{n}@example.com eller ring 2{n:07d}.")  # PII in some documents
    return "\n".join(lines)


def _run(*args: Any, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*nordpipe_executable(), *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"nordpipe {' '.join(map(str, args))} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Raw standardized files of three sources -> ingest -> dedup lines -> pii, all by the CLI."""
    base = tmp_path_factory.mktemp("corpus")
    rng = random.Random(17)
    for source, (language, license_id, metadata) in SOURCES.items():
        raw = base / "raw" / f"{source}.jsonl"
        raw.parent.mkdir(parents=True, exist_ok=True)
        with raw.open("w", encoding="utf-8") as handle:
            for n in range(DOCS_PER_SOURCE):
                handle.write(json.dumps({"id": f"{source}-{n}", "text": _text(rng, n), "added": "2024-05-01",
                                         "created": f"20{10 + n % 10}-01-01, 20{10 + n % 10}-12-31",
                                         "metadata": metadata(n)}, ensure_ascii=False) + "\n")
        extra = ["--license-name", "Testbøger (synthetic)"] if license_id == "other" else []
        _run("ingest", raw, "--dataset", source, "--output", base / "root", "--language", language,
             "--license", license_id, *extra)
    _run("dedup", "lines", base / "root", base / "lines", "--state", base / "state")
    _run("pii", base / "lines", base / "pii")
    return {"base": base, "root": base / "root", "lines": base / "lines", "pii": base / "pii"}


def _records(folder: Path) -> list[dict[str, Any]]:
    return [record for path in sorted(folder.glob("**/documents/*.jsonl.gz")) for _, record in iter_records(str(path))]


def _loaders_script() -> str:
    return r'''
import json, sys
import datasets, duckdb, polars as pl
pattern, cache = sys.argv[1], sys.argv[2]
out = {}
ds = datasets.load_dataset("json", data_files=pattern, split="train", cache_dir=cache)
out["datasets"] = {"rows": ds.num_rows, "features": {k: str(v) for k, v in ds.features.items()},
                   "metadata": [json.loads(m) for m in ds["metadata"]], "ids": list(ds["id"])}
stream = datasets.load_dataset("json", data_files=pattern, split="train", streaming=True)
out["streaming"] = [json.loads(row["metadata"]) for row in stream]
if hasattr(datasets, "Json"):  # datasets >= 4: the Json feature decodes the string to the dict
    features = datasets.Features({name: datasets.Value("string") for name in ("id", "text", "source", "added", "created")})
    features["metadata"] = datasets.Json()
    typed = datasets.load_dataset("json", data_files=pattern, split="train", features=features, cache_dir=cache)
    out["json_feature"] = list(typed["metadata"])
frame = pl.read_ndjson(pattern)
out["polars"] = {"schema": {k: str(v) for k, v in frame.schema.items()}, "rows": frame.height,
                 "urls": frame.select(pl.col("metadata").str.json_path_match("$.url")).to_series().drop_nulls().to_list()}
out["polars_scan"] = pl.scan_ndjson(pattern).select(pl.len()).collect().item()
rel = duckdb.sql(f"select id, metadata, metadata::JSON ->> '$.url' as url from read_json_auto('{pattern}')")
out["duckdb"] = {"types": [str(t) for t in rel.types], "rows": len(rel.fetchall()),
                 "urls": [u for (u,) in duckdb.sql(f"select metadata::JSON ->> '$.url' from read_json_auto('{pattern}')").fetchall() if u]}
print(json.dumps(out))
'''


def _offline_python(script: str, *args: Any, home: Path) -> dict[str, Any]:
    """Run ``script`` in a subprocess with the Hugging Face offline switches set before import."""
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(home)}
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("stage", ["root", "lines", "pii"])
def test_every_stage_output_loads_with_one_schema(corpus: dict[str, Path], stage: str, tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    pytest.importorskip("duckdb")
    folder = corpus[stage]
    expected = _records(folder)
    # the premise: metadata differ by source, and metadata.nordpipe by document
    assert len({frozenset(r["metadata"]) - {"nordpipe"} for r in expected}) >= 3
    if stage == "lines":
        assert 0 < sum("line_dedup" in r["metadata"].get("nordpipe", {}) for r in expected) < len(expected)
    pattern = str(folder / "*" / "documents" / "*.jsonl.gz") if stage == "root" else str(folder / "documents" / "*.jsonl.gz")
    loaded = _offline_python(_loaders_script(), pattern, tmp_path / "cache", home=tmp_path / "hf-home")

    by_id = {r["id"]: r["metadata"] for r in expected}
    got = loaded["datasets"]
    assert got["rows"] == len(expected)
    # pyarrow's JSON reader parses the YYYY-MM-DD ``added`` as a timestamp: the same in every file
    assert got["features"] == {**{k: "Value('string')" for k in ("id", "text", "source", "created", "metadata")},
                               "added": "Value('timestamp[s]')"}
    assert {i: m for i, m in zip(got["ids"], got["metadata"], strict=True)} == by_id  # nothing lost or added
    assert sorted(map(json.dumps, loaded["streaming"])) == sorted(json.dumps(m) for m in by_id.values())
    if "json_feature" in loaded:
        assert sorted(map(json.dumps, loaded["json_feature"])) == sorted(json.dumps(m) for m in by_id.values())
    urls = sorted(m["url"] for m in by_id.values() if "url" in m)
    assert len(urls) == DOCS_PER_SOURCE
    assert loaded["polars"]["rows"] == loaded["polars_scan"] == len(expected)
    assert set(loaded["polars"]["schema"].values()) == {"String"}
    assert sorted(loaded["polars"]["urls"]) == urls
    assert loaded["duckdb"]["rows"] == len(expected) and loaded["duckdb"]["types"][1] == "VARCHAR"
    assert sorted(loaded["duckdb"]["urls"]) == urls


def test_object_metadata_still_reads_and_is_reported(corpus: dict[str, Path], tmp_path: Path) -> None:
    """Files written before metadata became a string (and REFERENCE §1 input) keep working: a
    stage reads them and writes the string form; validate passes them with a note."""
    old = tmp_path / "old" / "nyheder"
    (old / "documents").mkdir(parents=True)
    (old / "README.md").write_text((corpus["root"] / "nyheder" / "README.md").read_text())
    records = _records(corpus["root"] / "nyheder")
    with gzip.open(old / "documents" / "part.jsonl.gz", "wb") as handle:
        handle.writelines(orjson.dumps(r) + b"\n" for r in records)  # metadata as an object
    assert isinstance(json.loads(gzip.open(old / "documents" / "part.jsonl.gz").readline())["metadata"], dict)
    checked = _run("validate", old, "--json", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["files"][0]["metadata_form"] == "object" and report["object_metadata_files"]
    assert "store metadata as an object" in checked.stderr
    _run("dedup", "lines", old, tmp_path / "lines", "--state", tmp_path / "state")
    written = [decode_record(json.loads(line)) for line in gzip.open(next((tmp_path / "lines" / "documents").glob("*.jsonl.gz")))]
    raw = [json.loads(line) for line in gzip.open(next((tmp_path / "lines" / "documents").glob("*.jsonl.gz")))]
    assert all(isinstance(r["metadata"], str) for r in raw)
    assert {r["id"]: {k: v for k, v in r["metadata"].items() if k != "nordpipe"} for r in written} == \
        {r["id"]: {k: v for k, v in r["metadata"].items() if k != "nordpipe"} for r in records}


def test_validate_refuses_a_file_mixing_metadata_forms(tmp_path: Path, make_records: Any) -> None:
    folder = tmp_path / "mixed"  # loose files: schema rules only
    folder.mkdir()
    first, second = make_records("a", "Et dokument.", url="https://a.dk"), make_records("b", "Et andet.", url="https://b.dk")
    with gzip.open(folder / "x.jsonl.gz", "wb") as handle:
        handle.write(orjson.dumps({**first, "metadata": orjson.dumps(first["metadata"]).decode()}) + b"\n")
        handle.write(orjson.dumps(second) + b"\n")
    result = _run("validate", folder / "x.jsonl.gz", "--json", check=False)
    assert result.returncode == 1
    errors = json.loads(result.stdout)["files"][0]["errors"]
    assert errors == [{"line": 2, "reason": "mixed metadata forms: metadata is an object here and a JSON string at "
                                            "line 1; one file must use one form to load with one schema"}]


def test_a_metadata_string_that_is_not_an_object_is_quarantined(tmp_path: Path, make_records: Any) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    good = make_records("a", "Et dokument med nok tekst.", url="https://a.dk")
    rows = [{**good, "metadata": orjson.dumps(good["metadata"]).decode()}, {**good, "id": "b", "metadata": "[1, 2]"},
            {**good, "id": "c", "metadata": "{not json"}]
    with gzip.open(folder / "x.jsonl.gz", "wb") as handle:
        handle.writelines(orjson.dumps(r) + b"\n" for r in rows)
    result = _run("validate", folder / "x.jsonl.gz", "--json", check=False)
    assert result.returncode == 1
    assert [e["line"] for e in json.loads(result.stdout)["files"][0]["errors"]] == [2, 3]
    _run("dedup", "lines", folder, tmp_path / "out", "--state", tmp_path / "state")
    quarantined = [json.loads(line) for p in (tmp_path / "out" / "quarantine").glob("*.jsonl") for line in p.open()]
    assert sorted(q["line"] for q in quarantined) == [2, 3]
    assert all("metadata is a string that is not a JSON object" in q["reason"] for q in quarantined)


# --------------------------------------------------------------------------------------------
# export hf


@pytest.fixture(scope="module")
def published(corpus: dict[str, Path]) -> dict[str, Any]:
    out = corpus["base"] / "hf"
    result = _run("export", "hf", corpus["pii"], out, "--pretty-name", "Nordic test corpus", "--json")
    return {"out": out, "stats": json.loads(result.stdout)}


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".nordpipe" not in p.parts}


def test_published_corpus_loads_offline_per_source(corpus: dict[str, Path], published: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    pytest.importorskip("huggingface_hub")
    from nordpipe.tokenize import load_tokenizer

    out = published["out"]
    script = r'''
import json, sys
import datasets, huggingface_hub
out, cache, sources = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
result = {}
everything = datasets.load_dataset(out, cache_dir=cache)
result["default"] = {split: [d.num_rows, d.column_names, {k: str(v) for k, v in d.features.items()}] for split, d in everything.items()}
result["sources"] = {}
for source in sources:
    d = datasets.load_dataset(out, source, split="train", cache_dir=cache)
    result["sources"][source] = {"ids": list(d["id"]), "tokens": list(d["token_count"]), "sources": sorted(set(d["source"]))}
stream = datasets.load_dataset(out, sources[0], split="train", streaming=True)
result["streamed"] = sum(1 for _ in stream)
card = huggingface_hub.DatasetCard.load(out + "/README.md")
data = card.data
result["card"] = {"type": type(data).__name__, "license": data.license, "language": data.language,
                  "size_categories": data.size_categories, "pretty_name": data.pretty_name,
                  "configs": data.configs, "nordpipe": data.to_dict().get("nordpipe")}
print(json.dumps(result))
'''
    loaded = _offline_python(script, out, tmp_path / "cache", ",".join(sorted(SOURCES)), home=tmp_path / "hf-home")
    expected = _records(corpus["pii"])
    assert loaded["default"]["train"][0] == len(expected) == published["stats"]["documents_out"]
    assert loaded["default"]["train"][1] == ["id", "text", "source", "added", "created", "token_count"]
    assert loaded["default"]["train"][2]["token_count"] == "Value('int64')"
    tokenizer = load_tokenizer()
    for source in SOURCES:
        mine = [r for r in expected if r["source"] == source]
        got = loaded["sources"][source]
        assert got["ids"] == [r["id"] for r in mine]  # input order
        assert got["sources"] == [source]
        assert got["tokens"] == [len(ids) for ids in tokenizer.encode_batch([r["text"] for r in mine])]
        assert published["stats"]["sources"][source]["tokens"] == sum(got["tokens"])
    assert loaded["streamed"] == len(loaded["sources"][sorted(SOURCES)[0]]["ids"])

    card = loaded["card"]
    assert card["type"] == "DatasetCardData" and card["pretty_name"] == "Nordic test corpus"
    assert card["license"] == sorted(license_id for _, license_id, _ in SOURCES.values())  # from the datasheets
    assert card["language"] == sorted(language for language, _, _ in SOURCES.values())
    assert card["size_categories"] == ["n<1K"]
    assert [c["config_name"] for c in card["configs"]] == ["default", *sorted(SOURCES)]
    assert card["configs"][1]["data_files"] == [{"split": "train", "path": "data/bog/*.parquet"}]
    assert {s: v["tokens"] for s, v in card["nordpipe"]["sources"].items()} == \
        {s: sum(v["tokens"]) for s, v in loaded["sources"].items()}
    assert card["nordpipe"]["sources"]["bog"]["license"] == "other"
    assert "Testbøger (synthetic)" in (out / "README.md").read_text()


def test_publish_is_byte_identical_on_rerun_and_cuts_row_groups(corpus: dict[str, Path], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    args = ("--pretty-name", "x", "--row-group-size", "2KiB", "--shard-size", "5KiB")
    _run("export", "hf", corpus["pii"], tmp_path / "a", *args)
    _run("export", "hf", corpus["pii"], tmp_path / "b", *args)
    first = _digests(tmp_path / "a")
    assert first == _digests(tmp_path / "b")
    _run("export", "hf", corpus["pii"], tmp_path / "a", *args)  # a rerun into the same OUTPUT
    assert _digests(tmp_path / "a") == first
    files = sorted((tmp_path / "a" / "data" / "nyheder").glob("*.parquet"))
    assert len(files) > 1 and files[0].name == f"train-00000-of-{len(files):05d}.parquet"
    rows = []
    for path in files:
        meta = pq.ParquetFile(path).metadata
        assert meta.num_row_groups >= 1
        assert meta.row_group(0).column(1).compression == "ZSTD"
        table = pq.read_table(path)
        rows += table.column("id").to_pylist()
        groups = [pq.ParquetFile(path).read_row_group(i) for i in range(meta.num_row_groups)]
        # every row group but a file's last holds at least the target bytes of text, and no more
        # than one document beyond it
        for group in groups[:-1]:
            sizes = [len(t.encode()) for t in group.column("text").to_pylist()]
            assert sum(sizes) >= 2 * 1024 > sum(sizes[:-1])
    assert rows == [r["id"] for r in _records(corpus["pii"]) if r["source"] == "nyheder"]


def test_publish_quarantines_bad_records_and_falls_back_without_datasheets(tmp_path: Path, make_records: Any) -> None:
    folder = tmp_path / "loose"
    folder.mkdir()
    rows = [make_records(f"d{i}", f"Dokument nummer {i} med lidt tekst.", source="misc", language="da") for i in range(5)]
    rows[2]["created"] = "2024-01-01"  # not a range: quarantined
    rows[3]["metadata"]["nordpipe"] = {"removed": "quality:x"}  # removed upstream: quarantined
    with gzip.open(folder / "part.jsonl.gz", "wb") as handle:
        handle.writelines(orjson.dumps({**r, "metadata": orjson.dumps(r["metadata"]).decode()}) + b"\n" for r in rows)
    result = _run("export", "hf", folder, tmp_path / "out", "--json")
    stats = json.loads(result.stdout)
    assert stats["documents_out"] == 3 and stats["quarantined_total"] == 2
    assert stats["sources"]["misc"]["datasheet"] is None and stats["extra"]["sources without datasheet"] == 1
    quarantined = [json.loads(line) for line in (tmp_path / "out" / "quarantine" / "export.jsonl").open()]
    assert [(q["line"], q["reason"].split(":")[0]) for q in quarantined] == [(3, "bad date"), (4, "removed upstream")]
    assert all(q["file"].endswith("part.jsonl.gz") for q in quarantined)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "license: other\n" in card and "license_name: unknown (no datasheet)" in card
    assert "language:\n- da\n" in card
    assert _run("export", "hf", folder, tmp_path / "out", "--strict", check=False).returncode == 1


# --------------------------------------------------------------------------------------------
# A pipeline root as INPUT: the final documents of every finished batch




def _raw_day(folder: Path, day: int, count: int) -> None:
    rng = random.Random(day)
    with (folder / f"day{day}.jsonl").open("w", encoding="utf-8") as handle:
        for n in range(count):
            handle.write(json.dumps({"id": f"d{day}-{n}", "text": _text(rng, n)}, ensure_ascii=False) + "\n")


def _pipeline(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """A pipeline over ``RAW/day*.jsonl``: ingest, pii (the last stage writing documents), tokenize."""
    raw, root = tmp_path / f"{name}-raw", tmp_path / f"{name}-root"
    raw.mkdir()
    pipeline = tmp_path / f"{name}.yaml"
    pipeline.write_text(
        f"root: {root}\ndatasets:\n  - name: nyheder\n    raw: [{raw}]\n"
        "    params: {license: cc0-1.0, created: '2020-01-01, 2020-12-31', language: da, id_field: id}\n"
        "stages:\n  - type: pii\n  - type: tokenize\n", encoding="utf-8")
    return raw, root, pipeline


def _published_ids(out: Path, tmp_path: Path, cache: str = "cache") -> list[str]:
    script = r'''
import json, sys
import datasets
out, cache = sys.argv[1], sys.argv[2]
print(json.dumps({"ids": list(datasets.load_dataset(out, split="train", cache_dir=cache)["id"])}))
'''
    return _offline_python(script, out, tmp_path / cache, home=tmp_path / "hf-home")["ids"]


def test_a_pipeline_root_publishes_the_final_documents_of_its_finished_batches(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    from nordpipe.runner import KILL_ENV

    raw, root, pipeline = _pipeline(tmp_path, "p")
    _raw_day(raw, 1, 12)
    _run("run", pipeline)
    _raw_day(raw, 2, 9)
    _run("run", pipeline)
    finals = sorted(root.glob("batches/*/*-pii"))
    assert [p.parent.name for p in finals] == ["0001", "0002"]
    assert sorted(root.glob("batches/*/*-tokenize/manifest.json"))  # tokenize ran after pii, writing no documents
    expected = [r["id"] for folder in finals for r in _records(folder)]  # batch, then file order
    assert len(expected) == 21 and {i.split("-")[0] for i in expected} == {"d1", "d2"}

    out = tmp_path / "hf"
    stats = json.loads(_run("export", "hf", root, out, "--json").stdout)
    assert stats["documents_out"] == 21 and stats["extra"]["batches"] == 2
    assert stats["sources"]["nyheder"]["datasheet"] == str(root / "datasets" / "nyheder" / "README.md")
    assert _published_ids(out, tmp_path) == expected
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "license: cc0-1.0\n" in card and "language:\n- da\n" in card
    first = _digests(out)

    # a third batch killed before the pipeline marks it done: all its stages completed, yet it is
    # not part of the corpus until the pipeline finishes it
    _raw_day(raw, 3, 5)
    killed = _run("run", pipeline, check=False, env={KILL_ENV: "pipeline.finish-batch.after-datasheets"})
    assert killed.returncode != 0
    assert json.loads((root / "batches" / "0003" / "batch.json").read_text())["done"] is False
    assert sorted(root.glob("batches/0003/*-pii/.nordpipe/complete.json"))
    again = json.loads(_run("export", "hf", root, out, "--json").stdout)
    assert again["documents_out"] == 21 and again["extra"]["unfinished batches left out"] == 1
    assert _digests(out) == first  # the same bytes: only finished batches count

    _run("run", pipeline)  # the rerun finishes batch 0003
    final = json.loads(_run("export", "hf", root, out, "--json").stdout)
    finals = sorted(root.glob("batches/*/*-pii"))
    assert len(finals) == 3 and final["documents_out"] == 26 and final["extra"]["unfinished batches left out"] == 0
    assert _published_ids(out, tmp_path, "cache-3") == [r["id"] for folder in finals for r in _records(folder)]


def test_a_pipeline_root_without_a_finished_batch_is_refused(tmp_path: Path) -> None:
    from nordpipe.runner import KILL_ENV

    raw, root, pipeline = _pipeline(tmp_path, "u")
    _raw_day(raw, 1, 6)
    killed = _run("run", pipeline, check=False, env={KILL_ENV: "pipeline.finish-batch.after-datasheets"})
    assert killed.returncode != 0 and sorted(root.glob("batches/0001/*-pii/.nordpipe/complete.json"))
    result = _run("export", "hf", root, tmp_path / "hf", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no finished batch" in result.stderr and "0001" in result.stderr
    assert not (tmp_path / "hf" / "data").exists()
