"""The removal-share guard: a stage or pipeline that removes (almost) everything fails loudly.

A filter that removes every document usually means a broken input or setting, not a corpus
that deserved it: an offline consent cache once made ``filter urls`` remove every web document,
and the README's own session ended with 0 documents and 0 tokens, exit 0. So every stage that
can remove documents (the registry's ``removes_documents``: urls, quality, lines, minhash)
checks, once its counts are known, the share of its input it removed:

    share = removed documents / (documents in - quarantined records)

``removed`` is the sum of the stage's removal reasons (``stats.json`` ``removed``); quarantined
records (unreadable input, already counted and bounded by ``--strict``) are neither input nor
removal here. A share above ``--max-removed-share`` (default ``DEFAULT_MAX_REMOVED_SHARE``,
0.95; ``1`` accepts anything) is ``RemovalShareExceeded``, a ``RunError``: exit 1, a message
naming the stage, the counts, the share and the top removal reasons, and **no completion
record**, so no later stage, ``nordpipe run`` or ``--from`` reads the output. A completion
record left by an earlier run of the same command under a higher limit is withdrawn too: the
result of a command depends on its arguments, not on what ran before.

What the share means per stage: for ``dedup lines`` it counts the documents the stage removed
(emptied by line removal), not lines; for ``dedup docs`` the near-duplicates removed. Both see
a legitimate 100% when the same data is deduplicated twice against a persistent state
(``--rerun-seen``, a redone batch): that is exactly the case to state with
``--max-removed-share 1``. ``pii``, ``tokenize``, ``ingest`` and the exports remove no
documents and have no such option (ingest's unreadable records are ``--strict``'s business). An
empty input (a valid empty dataset, ``documents_in == 0``) has no share: it gives a valid empty
output as before.

A rerun with a higher limit *accepts the output already written*, without recomputing. The
guard is not one of the run's parameters (``run.json`` does not hold it, so changing it needs
no ``--force``); every task of the refused run finished and moved its files into place, so the
rerun's executor skips them all, ``merge_stats`` merges the same per-task stats and the check
passes: the output is byte for byte what a fresh run would write (the contract that a rerun
gives the result of an uninterrupted run), at the cost of reading the task stats only. Stages
with persistent state (line dedup's Bloom filter, MinHash's index) committed the run to the
state before the check, as they do before any completion record; the accepting rerun finds the
run committed and does not add it twice, and ``nordpipe state rollback`` undoes it if the
removal was indeed wrong (then rerun with ``--force``).

A pipeline (``nordpipe run``) applies the same default to each of its stages (``max_removed_share:``
at the top of the file or ``nordpipe run --max-removed-share`` for all of them, a stage's own
``params: {max_removed_share: ...}`` for one) and checks the whole chain once the batch's last
stage is done: the documents removed by all stages over the documents ingest produced
(``chain_removal``). A chain over the limit leaves the batch unfinished (exit 1); rerunning
with a higher limit finishes it without running any stage again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from nordpipe.runner.options import DEFAULT_MAX_REMOVED_SHARE, RunError

TOP_REASONS = 5
"""Removal reasons named in the message."""
QUARANTINE_PREFIX = "quarantine:"


class RemovalShareExceeded(RunError):
    """A stage or chain removed more than ``--max-removed-share`` of its input (exit code 1)."""


def removed_by_reason(stats: Mapping[str, Any]) -> Counter[str]:
    """The stage's removed documents by reason (quarantine placeholders are not removals)."""
    return Counter({reason: int(count) for reason, count in (stats.get("removed") or {}).items()
                    if not str(reason).startswith(QUARANTINE_PREFIX) and count})


def removal_counts(stats: Mapping[str, Any]) -> tuple[int, int, int]:
    """``(input, kept, removed)`` documents of a stage's stats (input: read and not quarantined)."""
    removed = sum(removed_by_reason(stats).values())
    considered = int(stats.get("documents_in", 0)) - int(stats.get("quarantined_total", 0))
    return max(considered, 0), int(stats.get("documents_out", 0)), removed


def share(removed: int, considered: int) -> float | None:
    """``removed / considered``; None for an empty input (no share to judge)."""
    return removed / considered if considered > 0 else None


def _reasons(reasons: Counter[str]) -> str:
    top = reasons.most_common(TOP_REASONS)
    text = ", ".join(f"{reason} {count:,}" for reason, count in top)
    if len(reasons) > TOP_REASONS:
        text += f", ... ({len(reasons) - TOP_REASONS} more reasons)"
    return text or "none recorded"


def check_stage(stage: str, stats: Mapping[str, Any], limit: float = DEFAULT_MAX_REMOVED_SHARE,
                command: str | None = None) -> float | None:
    """Raise ``RemovalShareExceeded`` when the stage removed more than ``limit`` of its input;
    return the share (None: empty input)."""
    considered, kept, removed = removal_counts(stats)
    value = share(removed, considered)
    if value is None or value <= limit:
        return value
    name = command or stage
    raise RemovalShareExceeded(
        f"stage {stage} ({name}) removed {value:.1%} of its input, more than --max-removed-share {limit:g}: "
        f"{considered:,} documents in, {kept:,} kept, {removed:,} removed (top reasons: "
        f"{_reasons(removed_by_reason(stats))}). The output {stats.get('output', '')} is NOT marked complete, so "
        f"no later stage reads it. If this removal is expected, rerun the same command with --max-removed-share 1 "
        f"(or a higher share): the output already written is accepted without recomputing it."
    )


def chain_removal(ingested: int, stage_stats: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[int, int, Counter[str]]:
    """``(input, removed, reasons)`` of a chain: ``ingested`` documents into the first stage, the
    documents each stage removed (reasons prefixed with the stage's name)."""
    reasons: Counter[str] = Counter()
    for name, stats in stage_stats:
        for reason, count in removed_by_reason(stats).items():
            reasons[f"{name}: {reason}"] += count
    return ingested, sum(reasons.values()), reasons


def check_chain(what: str, ingested: int, stage_stats: Iterable[tuple[str, Mapping[str, Any]]],
                limit: float = DEFAULT_MAX_REMOVED_SHARE, hint: str = "") -> float | None:
    """Raise ``RemovalShareExceeded`` when a chain of stages removed more than ``limit`` of the
    documents ingest produced; return the share (None: nothing ingested)."""
    considered, removed, reasons = chain_removal(ingested, stage_stats)
    value = share(removed, considered)
    if value is None or value <= limit:
        return value
    raise RemovalShareExceeded(
        f"{what}: the stages together removed {value:.1%} of the ingested documents, more than "
        f"max_removed_share {limit:g}: {considered:,} documents ingested, {considered - removed:,} kept, "
        f"{removed:,} removed (top reasons: {_reasons(reasons)}). {hint}"
    )
