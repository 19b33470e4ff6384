"""Processes that run tasks set up Python's cyclic collector for documents
(``runner.processes.collector_for_tasks``): what they imported and the resources they share are
frozen out of its scans, and it runs on the task thresholds."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from datatrove.pipeline.base import PipelineStep

from nordpipe import process_cache
from nordpipe.runner.processes import TASK_GC_THRESHOLDS


class RecordCollector(PipelineStep):
    """Writes, per task, the collector's thresholds and how many objects are frozen."""

    name = "record collector"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Any:
        state = {"thresholds": list(gc.get_threshold()), "frozen": gc.get_freeze_count()}
        Path(self.folder, f"{rank}.json").write_text(json.dumps(state))
        yield from data or []


def test_local_workers_run_tasks_with_the_task_collector(tmp_path: Path) -> None:
    from nordpipe.runner.executors import supervised_local_executor

    out = tmp_path / "out"
    out.mkdir()
    executor = supervised_local_executor(pipeline=[RecordCollector(str(out))], tasks=3, workers=2,
                                         logging_dir=str(tmp_path / "logs"))
    executor.run()
    states = [json.loads((out / f"{rank}.json").read_text()) for rank in range(3)]
    for state in states:
        assert tuple(state["thresholds"]) == TASK_GC_THRESHOLDS
        assert state["frozen"] > 1000  # the modules the worker imported
    # this process (a test session, like the CLI's stage process) keeps Python's defaults
    assert gc.get_threshold() != TASK_GC_THRESHOLDS


def test_a_shared_resource_is_frozen_out_of_the_collector_in_task_processes_only() -> None:
    def frozen_by_a_build(task_process: bool) -> int:
        script = (
            "import gc\n"
            "from nordpipe import process_cache\n"
            "from nordpipe.runner.processes import collector_for_tasks\n"
            + ("collector_for_tasks()\n" if task_process else "")
            + "before = gc.get_freeze_count()\n"
            "resource = process_cache.shared(('test', 1), lambda: [[n] for n in range(5000)])\n"
            "print(gc.get_freeze_count() - before, gc.get_threshold()[0])\n"
        )
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
        return int(out[0])

    assert frozen_by_a_build(task_process=True) >= 5000  # the list and its 5,000 lists are no longer scanned
    assert frozen_by_a_build(task_process=False) == 0  # a library user's collector is left alone
    process_cache.clear()


def test_add_counts_records_what_one_stat_update_per_event_records() -> None:
    from nordpipe.steps import add_counts

    one_by_one, at_once = RecordCollector("unused"), RecordCollector("unused")
    for step in (one_by_one, at_once):
        step.stat_update("bytes", value=7)  # a counter that already holds other values
        step.stat_update("bytes", value=2)
    for _ in range(1000):
        one_by_one.stat_update("documents")
    for _ in range(5):
        one_by_one.stat_update("bytes")
    add_counts(at_once, {"documents": 1000, "bytes": 5, "never": 0})
    # what stats.json holds for a pure counter (mixed values agree up to float rounding, below)
    assert at_once.stats.to_dict()["stats"]["documents"] == one_by_one.stats.to_dict()["stats"]["documents"] == 1000
    assert set(at_once.stats.stats) == set(one_by_one.stats.stats) == {"documents", "bytes"}
    for label, expected in one_by_one.stats.stats.items():
        got = at_once.stats.stats[label]
        assert (got.total, got.n, got.min, got.max, got.unit) == (expected.total, expected.n, expected.min,
                                                                 expected.max, expected.unit), label
        assert abs(got.mean - expected.mean) < 1e-9 and abs(got.variance - expected.variance) < 1e-9, label


def test_a_reader_stopped_early_still_counts_the_documents_it_gave(tmp_path: Path) -> None:
    from nordpipe.documents import write_records
    from nordpipe.steps import DocumentReader

    folder = tmp_path / "in"
    folder.mkdir()
    records = [{"id": str(n), "text": f"tekst {n}", "source": "s", "added": "2024-01-01",
                "created": "2020-01-01, 2024-01-01", "metadata": {}} for n in range(10)]
    write_records(str(folder / "a.jsonl.gz"), records)
    reader = DocumentReader(str(folder))
    documents = reader.run(None, 0, 1)
    taken = [next(documents) for _ in range(4)]
    documents.close()
    assert [d.id for d in taken] == ["0", "1", "2", "3"]
    assert reader.stats["documents"].total == 4
    whole = DocumentReader(str(folder))
    assert len(list(whole.run(None, 0, 1))) == 10
    assert whole.stats["documents"].total == 10
