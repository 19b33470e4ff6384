"""``nordpipe pii --engine presidio``: same output as the fast engine, users' own recognizers,
usage errors, and no spaCy model and no network on the way."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from nordpipe.pii.synthetic import make_documents

SEED = 20240502  # not the seed the rules were developed on

# imported by every interpreter the CLI starts (main process and workers, PYTHONPATH): refuses
# network connections and the import of any spaCy model package, and says so in a file
SITECUSTOMIZE = '''
import os, re, sys

_MARK = os.environ["E17_GUARD_LOG"]
_MODEL = re.compile(r"^[a-z]{2,3}_core_(web|news)_")


def _guard(event, args):
    # an (host, port) address is the network; a path is a local socket (the forkserver's)
    network = event == "socket.getaddrinfo" or (event == "socket.connect" and isinstance(args[1], tuple))
    if network or (event == "import" and _MODEL.match(str(args[0]))):
        with open(_MARK, "a") as handle:
            handle.write(f"{event} {args[0]!r}\\n")
        raise RuntimeError(f"nordpipe pii tried {event} {args[0]!r}")


sys.addaudithook(_guard)
'''

RECOGNIZERS = """\
recognizers:
  - name: Danish licence plate
    supported_entity: DK_LICENSE_PLATE
    patterns:
      - name: plate
        regex: "\\\\b[A-Z]{2} \\\\d{2} \\\\d{3}\\\\b"
        score: 0.8
  - name: employee number
    supported_language: sv
    supported_entity: EMPLOYEE_ID
    patterns:
      - name: employee number after its context word
        regex: "(?<=anställningsnummer )\\\\d{6}"
        score: 0.9
"""


def _write_input(folder: Path, records: list[dict]) -> None:
    folder.mkdir(parents=True)
    with gzip.open(folder / "part-0.jsonl.gz", "wt", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _documents(output: Path) -> dict[str, bytes]:
    files = sorted((output / "documents").glob("*.jsonl.gz"))
    assert files, f"no documents in {output}"
    return {path.name: gzip.decompress(path.read_bytes()) for path in files}


def _records(output: Path) -> list[dict]:
    return [json.loads(line) for data in _documents(output).values() for line in data.splitlines()]


@pytest.fixture
def guarded(tmp_path: Path) -> dict[str, str]:
    import os

    folder = tmp_path / "guard"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "E17_GUARD_LOG": str(tmp_path / "guard.log")}


def _both_engines(nordpipe_cli, source: Path, tmp_path: Path, env: dict[str, str], *flags: str) -> tuple[Path, Path]:
    fast, presidio = tmp_path / "fast", tmp_path / "presidio"
    env = {**env, "TEST_PII_KEY": "k"}
    first = nordpipe_cli("pii", source, fast, "--key-env", "TEST_PII_KEY", *flags, env=env)
    assert first.returncode == 0, first.stderr
    second = nordpipe_cli("pii", source, presidio, "--key-env", "TEST_PII_KEY", "--engine", "presidio", *flags, env=env)
    assert second.returncode == 0, second.stderr
    assert first.stdout.count("\tpii ") == second.stdout.count("\tpii ") > 2
    recorded = json.loads((presidio / ".nordpipe" / "run.json").read_text())["parameters"]["engine"]
    assert recorded == "presidio"
    return fast, presidio


@pytest.mark.parametrize("mode", ["tag", "fake"])
def test_both_engines_write_identical_documents_on_synthetic_text(tmp_path, nordpipe_cli, make_records, guarded, mode):
    """The labelled synthetic corpus (every entity type, every language, half the documents
    without a language): byte-identical outputs, in tag and in fake mode, with no spaCy model
    and no network connection."""
    docs = make_documents(300, seed=SEED)
    records = [make_records(d.id, d.text, **({"language": d.language} if i % 2 else {})) for i, d in enumerate(docs)]
    _write_input(tmp_path / "in", records)
    fast, presidio = _both_engines(nordpipe_cli, tmp_path / "in", tmp_path, guarded, "--mode", mode)
    assert _documents(fast) == _documents(presidio)
    replaced = sum(sum(r["metadata"]["nordpipe"]["pii"].values()) if isinstance(r["metadata"], dict)
                   else sum(json.loads(r["metadata"])["nordpipe"]["pii"].values()) for r in _records(presidio))
    assert replaced >= sum(i.must_replace for d in docs for i in d.items) > 100
    assert not Path(guarded["E17_GUARD_LOG"]).exists()


def _real_documents(shared: Path) -> list[tuple[str, str]]:
    """(language, text) documents of 8 sentences from DDT (da) and NorNE (nb, nn)."""
    found = []
    for name, language in (("da_ddt-ud-ner-dev.conll", "da"), ("norne-no_bokmaal-ud-dev.conllu", "nb"),
                           ("norne-no_nynorsk-ud-dev.conllu", "nn")):
        lines = (shared / "data" / "ner" / name).read_text(encoding="utf-8").splitlines()
        sentences = [line[len("# text = "):] for line in lines if line.startswith("# text = ")]
        if not sentences:  # CoNLL without text comments: rebuild sentences from the tokens
            sentence: list[str] = []
            for line in [*lines, ""]:
                if line.strip() and not line.startswith("#"):
                    sentence.append(line.split("\t")[0])
                elif sentence:
                    sentences.append(" ".join(sentence))
                    sentence = []
        found.extend((language, " ".join(sentences[i : i + 8])) for i in range(0, len(sentences), 8))
    return found


def test_both_engines_write_identical_documents_on_real_text(tmp_path, nordpipe_cli, make_records, shared, guarded):
    """Danish (DDT) and Norwegian (NorNE) news and government text, names and all."""
    texts = _real_documents(shared)
    assert len(texts) > 300
    _write_input(tmp_path / "in", [make_records(f"real-{i}", text, language=language)
                                   for i, (language, text) in enumerate(texts)])
    fast, presidio = _both_engines(nordpipe_cli, tmp_path / "in", tmp_path, guarded)
    assert _documents(fast) == _documents(presidio)
    assert sum("<NAME>" in r["text"] for r in _records(presidio)) > 100
    assert not Path(guarded["E17_GUARD_LOG"]).exists()


def test_user_recognizers_are_applied_tagged_and_counted(tmp_path, nordpipe_cli, make_records):
    recognizers = tmp_path / "ours.yaml"
    recognizers.write_text(RECOGNIZERS)
    records = [
        make_records("da-1", "Bilen med nummerplade AB 12 345 tilhører Mette Hansen, cpr-nr. 010203-1235.", language="da"),
        make_records("da-2", "Se også CD 98 765 og EF 11 222.", language="da"),
        make_records("sv-1", "Hon har anställningsnummer 123456 och bilen XY 55 666.", language="sv"),
        make_records("da-3", "Medarbejder med anställningsnummer 654321 (forkert sprog).", language="da"),
        make_records("none", "Ingen data her."),
    ]
    _write_input(tmp_path / "in", records)
    result = nordpipe_cli("pii", tmp_path / "in", tmp_path / "out", "--engine", "presidio", "--recognizers",
                          recognizers, "--mode", "fake", "--key-env", "TEST_PII_KEY",
                          env={"TEST_PII_KEY": "k"})
    assert result.returncode == 0, result.stderr
    out = {r["id"]: r for r in _records(tmp_path / "out")}
    assert out["da-1"]["text"].startswith("Bilen med nummerplade <DK_LICENSE_PLATE> tilhører ")
    assert "010203-1235" not in out["da-1"]["text"] and "<CPR>" not in out["da-1"]["text"]  # CPR faked
    assert out["da-2"]["text"] == "Se også <DK_LICENSE_PLATE> og <DK_LICENSE_PLATE>."
    assert out["sv-1"]["text"] == "Hon har anställningsnummer <EMPLOYEE_ID> och bilen <DK_LICENSE_PLATE>."
    assert "654321" in out["da-3"]["text"]  # the Swedish-only recognizer leaves Danish documents alone
    assert out["none"]["text"] == "Ingen data her."
    summary = dict(line.split("\t")[1:] for line in result.stdout.splitlines())
    assert summary["pii DK_LICENSE_PLATE"] == "4" and summary["pii EMPLOYEE_ID"] == "1"
    stats = json.loads((tmp_path / "out" / ".nordpipe" / "stats.json").read_text())
    assert stats["steps"]["pii"]["DK_LICENSE_PLATE"] == 4 and stats["steps"]["pii"]["EMPLOYEE_ID"] == 1
    meta = out["sv-1"]["metadata"]
    meta = json.loads(meta) if isinstance(meta, str) else meta
    assert meta["nordpipe"]["pii"] == {"EMPLOYEE_ID": 1, "DK_LICENSE_PLATE": 1}

    fast = nordpipe_cli("pii", tmp_path / "in", tmp_path / "fast", "--mode", "fake", "--key-env", "TEST_PII_KEY",
                        env={"TEST_PII_KEY": "k"})
    assert fast.returncode == 0, fast.stderr
    assert "AB 12 345" in {r["id"]: r for r in _records(tmp_path / "fast")}["da-1"]["text"]


@pytest.mark.parametrize(("content", "problem"), [
    (None, "No such file"),
    ("recognizers: [\n  - name: x\n  bad", ":2: not valid YAML"),
    ("other: 1\n", "under 'recognizers:'"),
    ("recognizers:\n  - name: x\n    patterns: [{name: p, regex: 'a', score: 0.5}]\n", "no supported_entity"),
    ("recognizers:\n  - name: x\n    supported_entity: X\n    patterns: [{name: p, regex: '(', score: 0.5}]\n",
     "regex '('"),
    ("recognizers:\n  - name: x\n    supported_entity: X\n    supported_language: en\n"
     "    patterns: [{name: p, regex: 'a', score: 0.5}]\n", "supported_language en"),
])
def test_bad_recognizer_file_exits_2_naming_file_and_problem(tmp_path, nordpipe_cli, make_records, content, problem):
    _write_input(tmp_path / "in", [make_records("a", "tekst")])
    path = tmp_path / "ours.yaml"
    if content is not None:
        path.write_text(content)
    result = nordpipe_cli("pii", tmp_path / "in", tmp_path / "out", "--engine", "presidio", "--recognizers", path)
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert str(path) in message.replace("│", "").replace(" ", "") or path.name in message, message
    assert problem in message, message
    assert not (tmp_path / "out").exists()  # before any task started


def test_engine_usage_errors_exit_2(tmp_path, nordpipe_cli, make_records):
    _write_input(tmp_path / "in", [make_records("a", "tekst")])
    recognizers = tmp_path / "ours.yaml"
    recognizers.write_text(RECOGNIZERS)
    fast_with_file = nordpipe_cli("pii", tmp_path / "in", tmp_path / "o1", "--recognizers", recognizers)
    assert fast_with_file.returncode == 2 and "needs --engine presidio" in fast_with_file.stderr
    assert nordpipe_cli("pii", tmp_path / "in", tmp_path / "o2", "--engine", "spacy").returncode == 2
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    help_text = nordpipe_cli("pii", "--help")
    assert "--engine" in help_text.stdout and "--recognizers" in help_text.stdout


def test_pipeline_file_checks_engine_and_recognizers_at_load(tmp_path, nordpipe_cli):
    """A pipeline file's pii ``params`` get the same checks (``--dry-run`` catches them) and a
    good recognizer file reaches the stage as ``--engine presidio --recognizers FILE``."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text('{"text": "Hej"}\n')
    good = tmp_path / "ours.yaml"
    good.write_text(RECOGNIZERS)
    bad = tmp_path / "bad.yaml"
    bad.write_text("recognizers:\n  - name: x\n    supported_entity: X\n    patterns: [{name: p, regex: '(', score: 1}]\n")

    def dry_run(params: str):
        text = (f"root: {tmp_path / 'root'}\ndatasets:\n  - name: d\n    raw: [{raw}]\n    params: {{license: cc0-1.0}}\n"
                f"stages:\n  - type: pii\n    params: {params}\n")
        (tmp_path / "p.yaml").write_text(text)
        return nordpipe_cli("run", tmp_path / "p.yaml", "--dry-run")

    plan = dry_run(f"{{engine: presidio, recognizers: {good}}}")
    assert plan.returncode == 0, plan.stderr
    assert f"--engine presidio --recognizers {good}" in plan.stdout
    for params, problem in ((f"{{engine: presidio, recognizers: {bad}}}", f"{bad}: recognizer 1 ('x'): regex '('"),
                            (f"{{recognizers: {good}}}", "recognizers: needs engine: presidio"),
                            ("{engine: spacy}", "engine 'spacy'; allowed: fast, presidio")):
        result = dry_run(params)
        assert result.returncode == 2 and "p.yaml:8" in result.stderr and problem in result.stderr, (params, result.stderr)
