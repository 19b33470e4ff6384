"""The package is honest: what a checkout does, an installed wheel does too.

- the blocklists, the Nordic word exceptions and the sources file are package data
  (``nordpipe/data/blocklists``), so a wheel installed outside the checkout filters URLs exactly
  as the editable install does (a ``.dk`` page with "slut" in its URL survives in both);
- a configured list that is missing is an error naming it, never an empty list;
- the PII scanner's modules are the ``.py`` files (only ``_loops.pyx`` is compiled);
- ``lxml_html_clean`` (WARC ingest) is a declared dependency; ``nordpipe --version`` works.

The wheel test builds the wheel from a copy of the checkout (``pip wheel --no-deps``, which
fetches the build requirements from PyPI like any install), installs it with ``--no-deps`` into
a fresh venv that sees this venv's site-packages through a ``.pth`` file (the dependencies, not
``src/``: its ``nordpipe`` is the wheel's), and runs the same chain with both installs.
"""

from __future__ import annotations

import gzip
import importlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import requires, version
from pathlib import Path

import pytest

import nordpipe
from nordpipe.blocklists import shipped_blocklists
from nordpipe.documents import decode_record

REPO = Path(__file__).resolve().parents[1]
EDITABLE_NORDPIPE = Path(sys.executable).parent / "nordpipe"

URL_DOCS = [
    # (id, url, expected removal reason or None)
    ("dr-slut", "https://www.dr.dk/sport/slut-paa-saesonen", None),  # Nordic exception: "slut" = "end"
    ("dr-plain", "https://www.dr.dk/nyheder/indland/vejret", None),
    ("com-slut", "https://www.example.com/slut-video", "urls:banned_word"),  # no exception off Nordic hosts
    ("dr-bondage", "https://www.dr.dk/nyheder/indland/bondage-klub-lukket", None),  # Nordic allowlist
    ("gambling", "https://www.0-casino.info/bonus", "urls:blocklist(gambling)"),
    ("scam", "https://dailymail.top/celebrity/news", "urls:blocklist(scam)"),
    ("phishing", "https://0a2991.arcadejafet.cl/1rTndRPiKL9bUtVGdZ1CB4aAAwjfsmLzWnZjmLauvxOe9RiOIrjQTexG4AhDZ4TW/",
     "urls:url_list(phishing)"),
    ("malware", "http://144.31.30.228/linux_arm64", "urls:url_list(malware)"),
    ("adult", "https://www.0-1avsex.com/", "urls:blocklist(adult)"),
]
"""Documents whose fate depends on the shipped lists (UT1 entries of ``gambling/``, ``scam/``,
``phishing/``, ``malware/``; ``adult`` is datatrove's bundled UT1 list) and on the Nordic
allowlist and word exceptions. The ``.example`` placeholders these used to name are gone."""


def _text(number: int) -> str:
    return (
        f"Dette er artikel nummer {number} fra testen af pakken. Sæsonen er slut, og holdet har spillet "
        "godt hele året. Træneren siger, at spillerne har gjort deres bedste i alle kampe, og at de "
        "glæder sig til næste sæson. Mange tilskuere kom for at se den sidste kamp på stadion i byen."
    )


# --------------------------------------------------------------------------------------------
# Quick checks


def test_version_flag() -> None:
    result = subprocess.run([str(EDITABLE_NORDPIPE), "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"nordpipe {version('nordpipe')}\n"


def test_lxml_html_clean_is_declared() -> None:
    """WARC ingest (trafilatura -> justext) imports ``lxml.html.clean``, which recent lxml moved
    to the ``lxml_html_clean`` package."""
    declared = [r.split(";")[0].replace("-", "_").lower() for r in requires("nordpipe") or []]
    assert any(r.startswith("lxml_html_clean") for r in declared), declared
    from lxml.html.clean import Cleaner  # noqa: F401


def test_shipped_lists_are_package_data() -> None:
    folder = shipped_blocklists()
    assert folder == Path(nordpipe.__file__).parent / "data" / "blocklists"
    # adult is datatrove's bundled UT1 list (read from the datatrove package), not a folder here.
    assert {"gambling", "malware", "phishing", "scam"} <= {p.name for p in folder.iterdir() if p.is_dir()}
    assert (folder / "nordic_word_exceptions.txt").is_file() and (folder / "sources.toml").is_file()
    assert (folder / "nordic_allowlist.txt").is_file() and (folder / "UT1-LICENSE.txt").is_file()
    assert "slut" in (folder / "nordic_word_exceptions.txt").read_text(encoding="utf-8")


def test_scanner_modules_are_not_shadowed_by_compiled_copies() -> None:
    """Only ``_loops.pyx`` is compiled: engine, names, recognizers and replace run from their
    ``.py`` files, so an edit to them takes effect (no leftover ``.so`` imported instead)."""
    folder = Path(nordpipe.__file__).parent / "pii"
    for name in ("engine", "names", "recognizers", "replace"):
        module = importlib.import_module(f"nordpipe.pii.{name}")
        assert module.__file__ == str(folder / f"{name}.py"), module.__file__
        assert not [p.name for p in folder.glob(f"{name}.*") if p.suffix in (".so", ".pyd", ".c")]


def test_missing_configured_lists_fail_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nordpipe import blocklists
    from nordpipe.urls import UrlBlocklistFilter

    store = tmp_path / "store"
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        UrlBlocklistFilter(datatrove_list=False, store=store, blocklists=[tmp_path / "nope.txt"])
    with pytest.raises(FileNotFoundError, match=r"gone\.txt"):
        UrlBlocklistFilter(datatrove_list=False, store=store, allowlists=[tmp_path / "gone.txt"])
    with pytest.raises(ValueError, match="'gamblng'"):
        UrlBlocklistFilter(datatrove_list=False, store=store, categories=["gambling", "gamblng"])
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        UrlBlocklistFilter(datatrove_list=False, store=store, blocklists_dir=tmp_path / "no-such-dir")
    # A category of the store is known as well as a shipped one.
    (store / "ads").mkdir(parents=True)
    (store / "ads" / "a.txt").write_text("ads.example\n")
    step = UrlBlocklistFilter(datatrove_list=False, store=store, categories=["ads", "gambling"])
    step.load()
    assert set(step._own.names) == {"gambling", "ads"}

    # A package without its data files: an error naming the folder, not an empty list.
    monkeypatch.setattr(blocklists.resources, "files", lambda package: tmp_path / "bare" / package)
    with pytest.raises(FileNotFoundError, match="shipped blocklists are missing"):
        UrlBlocklistFilter(datatrove_list=False, store=store)
    with pytest.raises(FileNotFoundError, match="shipped blocklists are missing"):
        UrlBlocklistFilter(datatrove_list=False, store=store, project_lists=False)  # the word exceptions
    UrlBlocklistFilter(datatrove_list=False, store=store, project_lists=False, nordic_exceptions=False)


def test_cli_missing_blocklist_or_category_exits_nonzero(tmp_path: Path) -> None:
    docs = tmp_path / "in" / "documents"
    docs.mkdir(parents=True)
    record = {"id": "a", "text": "Hej.", "source": "in", "added": "2026-01-01",
              "created": "2026-01-01, 2026-01-01", "metadata": {"url": "https://www.dr.dk/"}}
    with gzip.open(docs / "a.jsonl.gz", "wt", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
    env = {**os.environ, "NORDPIPE_BLOCKLIST_STORE": str(tmp_path / "store")}
    base = [str(EDITABLE_NORDPIPE), "filter", "urls", str(tmp_path / "in")]
    missing = tmp_path / "my-blocked-domains.txt"
    result = subprocess.run([*base, str(tmp_path / "out1"), "--blocklist", str(missing), "--no-datatrove-list"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "my-blocked-domains.txt" in result.stderr and "does not exist" in result.stderr
    result = subprocess.run([*base, str(tmp_path / "out2"), "--category", "gamblng", "--no-datatrove-list"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "unknown blocklist category 'gamblng'" in result.stderr
    assert not (tmp_path / "out2" / "documents").exists()


# --------------------------------------------------------------------------------------------
# The wheel, installed outside the checkout


def _copy_ignore(folder: str, names: list[str]) -> set[str]:
    skip = {".git", ".venv", "build", "dist", "demo-output", ".slurm", ".pytest_cache", ".ruff_cache",
            "__pycache__", "work"}
    return {n for n in names if n in skip or n.endswith((".egg-info", ".so", ".pyd", ".c"))}


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the wheel from a copy of the checkout and install it into a fresh venv."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(REPO, source, ignore=_copy_ignore)
    wheels = base / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)], base,
         _clean_env())
    (wheel,) = wheels.glob("nordpipe-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base, _clean_env())
    python = venv / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base,
                _clean_env()).stdout.strip()
    # The dependencies come from this venv (no downloads); its editable nordpipe stays invisible:
    # a .pth line adds a folder to sys.path but does not run that folder's own .pth files.
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "_nordpipe_test_deps.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], base, _clean_env())
    return {"wheel": wheel, "venv": venv, "nordpipe": venv / "bin" / "nordpipe", "python": python}


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO)))
    return env


def _documents(root: Path) -> dict[str, list[str]]:
    """Every ``*.jsonl.gz`` under root (outside ``.nordpipe/``), decompressed, by relative path."""
    found = {}
    for path in sorted(root.rglob("*.jsonl.gz")):
        if ".nordpipe" in path.relative_to(root).parts:
            continue
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            found[str(path.relative_to(root))] = handle.read().splitlines()
    return found


def _run_chain(nordpipe_command: Path, root: Path, env: dict[str, str]) -> None:
    """sample -> ingest (jsonl, WARC, hand-made URL test set) -> filter urls -> filter quality, in ``root``."""
    root.mkdir(parents=True)
    with open(root / "urltest.jsonl", "w", encoding="utf-8") as out:
        for number, (doc_id, url, _) in enumerate(URL_DOCS):
            out.write(json.dumps({"id": doc_id, "url": url, "text": _text(number)}, ensure_ascii=False) + "\n")
    n = str(nordpipe_command)
    for command in (
        [n, "sample", "sample", "--scale", "0.1"],
        [n, "ingest", "sample/raw/nyheder", "--config", "sample/datasets/nyheder.yaml", "--output", "data"],
        [n, "ingest", "sample/raw/web", "--config", "sample/datasets/web.yaml", "--output", "data"],
        [n, "ingest", "urltest.jsonl", "--dataset", "urltest", "--output", "data", "--text-field", "text",
         "--id-field", "id", "--url-field", "url", "--language", "da", "--license", "cc0-1.0",
         "--added", "2026-01-01", "--created", "2026-01-01"],
        [n, "filter", "urls", "data", "urls", "--keep-removed"],
        [n, "filter", "quality", "urls", "quality", "--keep-removed"],
    ):
        _run(command, root, env)


@pytest.mark.slow
def test_wheel_outside_checkout_equals_editable_install(wheel_install: dict[str, Path], tmp_path: Path) -> None:
    names = zipfile.ZipFile(wheel_install["wheel"]).namelist()
    for data_file in ("nordpipe/data/blocklists/nordic_word_exceptions.txt", "nordpipe/data/blocklists/sources.toml",
                      "nordpipe/data/blocklists/phishing/ut1-phishing.txt.gz", "nordpipe/data/blocklists/UT1-LICENSE.txt",
                      "nordpipe/data/blocklists/UT1-ATTRIBUTION.md", "nordpipe/data/blocklists/nordic_allowlist.txt",
                      "nordpipe/data/quality/da.yaml",
                      "nordpipe/data/sentences/da.txt"):
        assert data_file in names, data_file
    compiled = [n for n in names if n.startswith("nordpipe/pii/") and n.endswith((".so", ".pyd", ".c"))]
    assert all(Path(n).name.startswith("_loops.") and not n.endswith(".c") for n in compiled), compiled
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "Requires-Dist: lxml_html_clean" in zipfile.ZipFile(wheel_install["wheel"]).read(metadata).decode()

    outside = tmp_path / "outside"
    outside.mkdir()
    wheel_env = _clean_env()
    # The same ../shared sentences (if any) for both installs, and no user store of downloaded lists.
    from nordpipe.sample import find_shared

    shared = find_shared()
    if shared is not None:
        wheel_env["NORDPIPE_SHARED"] = str(shared)
    wheel_env["NORDPIPE_BLOCKLIST_STORE"] = str(tmp_path / "no-store")
    where = _run([str(wheel_install["python"]), "-c", "import nordpipe; print(nordpipe.__file__)"], outside,
                 wheel_env).stdout.strip()
    assert where.startswith(str(wheel_install["venv"])), where
    assert not where.startswith(str(REPO))
    version_line = _run([str(wheel_install["nordpipe"]), "--version"], outside, wheel_env).stdout
    assert version_line == f"nordpipe {version('nordpipe')}\n"

    editable_env = {**os.environ, "NORDPIPE_BLOCKLIST_STORE": str(tmp_path / "no-store")}
    if shared is not None:
        editable_env["NORDPIPE_SHARED"] = str(shared)
    _run_chain(wheel_install["nordpipe"], outside / "run", wheel_env)
    _run_chain(EDITABLE_NORDPIPE, tmp_path / "editable", editable_env)

    from_wheel = _documents(outside / "run")
    from_checkout = _documents(tmp_path / "editable")
    assert sorted(from_wheel) == sorted(from_checkout)
    assert any(p.startswith("quality/") for p in from_wheel) and any("web" in p for p in from_wheel)
    for path, lines in from_checkout.items():
        assert from_wheel[path] == lines, f"{path} differs between the wheel and the editable install"

    # The shipped lists and exceptions were in force in the wheel install.
    fate: dict[str, str | None] = {}
    for path, lines in from_wheel.items():
        if not path.startswith("urls/"):
            continue
        for line in lines:
            record = decode_record(json.loads(line))
            if record["source"] == "urltest":
                fate[record["id"]] = record["metadata"].get("nordpipe", {}).get("removed")
    assert fate == {doc_id: reason for doc_id, _, reason in URL_DOCS}
