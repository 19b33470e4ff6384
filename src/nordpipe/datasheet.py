"""Datasheets: ``ROOT/NAME/README.md`` with Hugging Face-style YAML front matter and statistics.

A datasheet never invents a language. Its ``language`` is what the dataset's config or
``--language`` states; without that, it is what language identification finds in a bounded
sample of the ingested records (``sample_languages``): the languages of at least
``LANGUAGE_MIN_SHARE`` of the sampled records, most frequent first, and the sample's counts are
kept in the ingest stats (``language_sample``, summed over a pipeline's batches) and shown in
the statistics table. A dataset with no identifiable text gets ``language: []`` and "unknown":
a tool that picks datasets by language then skips it rather than taking an English crawl for
Danish (which the old default ``[da]`` did). Records' ``metadata.language`` is only ever set
from a single stated language (ingest); otherwise the quality stage's language identification
labels each document.

The sample: at most ``LANGUAGE_SAMPLE`` records, the first ones of each document file (files
spread evenly when there are more files than that), each judged on its middle 1,000 characters
by lingua in low-accuracy mode over the Nordic languages it knows, English and the commonest
other languages of Nordic crawls (``OTHER_LANGUAGES``); a text it calls Icelandic, Danish or
Norwegian that holds "ð" gets ``langid.LanguageIdentifier``'s Faroese second opinion. langid's
detector alone knows only the Nordic languages and English: it called an Aragonese Wikipedia
page of the Common Crawl sample English with confidence 1.0, and German text Danish or Swedish.
With the broader set such text is named by the nearest language that set has (German as
German; the Aragonese page as Spanish); a language outside it can still be misnamed, never
silently defaulted.

Cost (lingua's models load once per ingest process; measured on this project's 2-core machine
under a load average of ~7 from other jobs, so roughly 3x the idle figures): loading the
low-accuracy models of the 7 Nordic/English languages 0.64 s, of the 17 used here 1.38 s;
judging 200 records of ~1,000 characters 0.72 s / 0.88 s. For comparison, lingua's
high-accuracy models take ~5.2 s to load and py3langid's full 97-language model ~3.6 s, so
neither is used here. The whole sample, read and judged, is bounded by the sample size, not the
dataset size (``benchmarks/results/ingest_language.md``). Low accuracy is worse only on short
texts (lingua's documentation: below ~120 characters), and a dataset-level share over 200
records absorbs single misjudgements; the quality stage still labels every document with the
high-accuracy mode. The first records of a file are not a random sample: a dataset whose files
change language halfway through is described by their beginnings (state ``--language`` for such
data).

Stated codes are written as ``nordpipe.languages.datasheet_code`` gives them (ISO 639-1; ``no``,
Norwegian in both written forms, stays ``no`` as the Hub uses it).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from nordpipe.ingest import IngestConfig

LANGUAGE_SAMPLE = 200
"""Records whose language is identified per ingest run when no language is stated."""
LANGUAGE_MIN_SHARE = 0.05
"""A language is listed when at least this share of the sampled records is in it."""
UNKNOWN = "unknown"

REQUIRED_FIELDS = ("pretty_name", "language", "license", "size_categories", "task_categories", "task_ids")

_SIZE_BOUNDS = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
]


def size_category(count: int) -> str:
    """Hugging Face ``size_categories`` label for a record count."""
    for bound, label in _SIZE_BOUNDS:
        if count < bound:
            return label
    return "n>10B"


OTHER_LANGUAGES = ("GERMAN", "FRENCH", "SPANISH", "PORTUGUESE", "ITALIAN", "DUTCH", "POLISH", "RUSSIAN", "ESTONIAN",
                   "LATIN")
"""Languages besides the Nordic ones and English that the sample's first look can name: the
commonest non-Nordic languages of Nordic web crawls, so that a page in one of them is not
called the nearest Nordic language or English (langid's detector knows only those)."""


class _SampleIdentifier:
    """Label one record for the datasheet: lingua (low accuracy) over the Nordic languages it
    knows, English and ``OTHER_LANGUAGES``; a text lingua calls Icelandic, Danish or Norwegian
    that holds "ð" goes to ``langid.LanguageIdentifier`` (built only then), whose second opinion
    knows Faroese, which lingua has no model for."""

    FAROESE_CANDIDATES = ("is", "da", "nb", "nn")

    def __init__(self) -> None:
        from lingua import Language, LanguageDetectorBuilder

        from nordpipe.langid import detector_languages

        nordic = {code for code in detector_languages() if code != "fo"}
        candidates = {getattr(Language, name) for name in OTHER_LANGUAGES}
        candidates |= {language for language in Language.all() if language.iso_code_639_1.name.lower() in nordic}
        self.broad = LanguageDetectorBuilder.from_languages(*candidates).with_low_accuracy_mode().build()
        self._refine: Any = None

    def __call__(self, text: str) -> str:
        sample = text if len(text) <= 1000 else text[(len(text) - 1000) // 2:][:1000]
        if not any(ch.isalpha() for ch in sample):
            return UNKNOWN
        found = self.broad.detect_language_of(sample)
        if found is None:
            return UNKNOWN
        code = found.iso_code_639_1.name.lower()
        if code in self.FAROESE_CANDIDATES and "ð" in sample.lower():
            if self._refine is None:
                from nordpipe.langid import LanguageIdentifier

                self._refine = LanguageIdentifier(low_accuracy=True)
            return str(self._refine.identify(sample)[0])
        return code


def sample_languages(dataset_dir: str, limit: int = LANGUAGE_SAMPLE) -> dict[str, int]:
    """Identified language -> records, over at most ``limit`` records of the dataset's document
    files (the first ones of each file; ``unknown`` for text without letters)."""
    from nordpipe.documents import iter_jsonl_lines
    from nordpipe.layout import list_document_files

    documents = os.path.join(dataset_dir, "documents")
    files = list_document_files(documents) if os.path.isdir(documents) else []
    if not files or limit <= 0:
        return {}
    if len(files) > limit:
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    per_file = math.ceil(limit / len(files))
    identify = _SampleIdentifier()
    counts: Counter[str] = Counter()
    for path in files:
        taken = 0
        for item in iter_jsonl_lines(path):
            if taken >= per_file or sum(counts.values()) >= limit:
                break
            record = item.record if item.error is None else None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                continue
            counts[identify(record["text"])] += 1
            taken += 1
    return dict(counts)


def identified_languages(sample: dict[str, int]) -> list[str]:
    """The languages of at least ``LANGUAGE_MIN_SHARE`` of a sample, most frequent first."""
    total = sum(sample.values())
    if not total:
        return []
    return [code for code, count in sorted(sample.items(), key=lambda kv: (-kv[1], kv[0]))
            if code != UNKNOWN and count / total >= LANGUAGE_MIN_SHARE]


def _languages_line(config: IngestConfig, stats: dict[str, Any]) -> str:
    if config.language:
        return ", ".join(config.language) + " (stated)"
    sample = {k: int(v) for k, v in (stats.get("language_sample") or {}).items()}
    total = sum(sample.values())
    if not total:
        return "unknown (not stated, no records to identify)"
    shares = ", ".join(f"{code} {count / total:.0%}" for code, count in sorted(sample.items(), key=lambda kv: (-kv[1], kv[0])))
    listed = identified_languages(sample)
    head = ", ".join(listed) if listed else "unknown"
    return f"{head} (identified by lingua in a sample of {total:,} records: {shares})"


def front_matter(config: IngestConfig, stats: dict[str, Any]) -> dict[str, Any]:
    languages = list(config.language) or identified_languages(
        {k: int(v) for k, v in (stats.get("language_sample") or {}).items()})
    matter: dict[str, Any] = {
        "pretty_name": config.pretty_name or config.dataset,
        "language": languages,
        "license": config.license or "other",
    }
    if matter["license"] == "other":
        matter["license_name"] = config.license_name or "unknown (set license in pipelines/datasets/<name>.yaml)"
    matter["size_categories"] = [size_category(int(stats.get("documents_out", 0)))]
    matter["task_categories"] = list(config.task_categories)
    matter["task_ids"] = list(config.task_ids)
    return matter


def render_datasheet(config: IngestConfig, stats: dict[str, Any]) -> str:
    matter = yaml.safe_dump(front_matter(config, stats), sort_keys=False, allow_unicode=True)
    docs = int(stats.get("documents_out", 0))
    chars = int(stats.get("characters_out", 0))
    created = f"{stats.get('created_min')} to {stats.get('created_max')}" if stats.get("created_min") else "unknown"
    quarantined = int(stats.get("quarantined_total", 0))
    lines = [
        "---",
        matter.rstrip(),
        "---",
        "",
        f"# {config.pretty_name or config.dataset}",
        "",
        config.description or f"The `{config.dataset}` dataset in nordpipe's standardized format.",
        "",
        "## Statistics",
        "",
        "| | |",
        "|---|---|",
        f"| records | {docs:,} |",
        f"| characters | {chars:,} |",
        f"| mean characters per record | {chars // docs if docs else 0:,} |",
        f"| created | {created} |",
        f"| languages | {_languages_line(config, stats)} |",
        f"| quarantined at ingest | {quarantined:,} |",
        "",
        "Records are in `documents/*.jsonl.gz` (fields `id`, `text`, `source`, `added`, `created`, `metadata`,",
        "the last a JSON object encoded as a string so that every file loads with one schema);",
        "records that failed validation are in `quarantine/` with file, line and reason.",
        "",
    ]
    return "\n".join(lines)


def write_datasheet(dataset_dir: str, config: IngestConfig, stats: dict[str, Any]) -> str:
    path = os.path.join(dataset_dir, "README.md")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(render_datasheet(config, stats))
    os.replace(tmp, path)
    return path


def parse_front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a datasheet; raises ``ValueError`` with the reason."""
    if not text.startswith("---\n"):
        raise ValueError("no YAML front matter (the file must start with '---')")
    end = text.find("\n---", 4)
    if end == -1:
        raise ValueError("front matter is not closed by '---'")
    try:
        data = yaml.safe_load(text[4:end])
    except yaml.YAMLError as err:
        raise ValueError(f"front matter is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError("front matter is not a mapping")
    return data


def check_datasheet(path: str) -> list[str]:
    """Problems with a datasheet (empty list: fine)."""
    try:
        with open(path, encoding="utf-8") as handle:
            matter = parse_front_matter(handle.read())
    except FileNotFoundError:
        return [f"{path}: datasheet missing"]
    except (ValueError, UnicodeDecodeError) as err:
        return [f"{path}: {err}"]
    problems = [f"{path}: front matter lacks {field!r}" for field in REQUIRED_FIELDS if field not in matter]
    if matter.get("license") == "other" and not matter.get("license_name"):
        problems.append(f"{path}: license: other needs license_name")
    for field in ("language", "size_categories", "task_categories", "task_ids"):
        if field in matter and not isinstance(matter[field], list):
            problems.append(f"{path}: {field} should be a list")
    return problems
