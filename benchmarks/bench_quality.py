"""Benchmark of nordpipe's quality filters and language identification against datatrove.

Run: ``.venv/bin/python benchmarks/bench_quality.py`` (20,000 documents; ``--quick`` for 1,000).

What it measures, side by side in one run on the same documents:

1. Agreement: datatrove 0.10.1's ``GopherRepetitionFilter`` -> ``GopherQualityFilter`` ->
   ``C4QualityFilter`` configured with nordpipe's Danish settings (same thresholds, stop words
   and policy phrases), against nordpipe's three filters with its departures from datatrove's
   rules turned off (``DATATROVE_RULES``); keep/drop agreement per document and every
   disagreement by (datatrove's reason, nordpipe's reason), with examples. Then the departures:
   every document the shipped settings judge differently, by (shared-rule reason, shipped reason).
2. Speed: docs/s and MB/s of each side's three filters together on one core (filters only: no
   reading or writing), and the ratio.
3. Language identification: accuracy per language on paragraphs of 1-3 real sentences from
   ``../shared/data/ud/`` and the cost of ``LanguageIdentifier`` on the benchmark documents.

The corpus is generated (seeded): ~2 KB Danish documents composed of the real Danish UD
sentences (``../shared/data/ud/da_ddt-ud-dev.conllu``) in paragraphs, and, mixed in, the kinds
of web junk the filters are for (menus, cookie banners, keyword spam, lists, tables of numbers,
code, lorem ipsum, repeated lines, short pages) plus prose near each threshold. Without
``../shared`` it falls back to sentences built from a small vocabulary (and says so).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
UD = SHARED / "data" / "ud"

MENU_WORDS = ["Forside", "Nyheder", "Sport", "Kultur", "Om os", "Kontakt", "Job", "Log ind", "Søg", "Shop", "Kurv",
              "Blog", "Arkiv", "Abonnement", "Hjælp", "Vilkår", "Presse", "Events", "Galleri", "Tilbud"]
COOKIE_LINES = [
    "Vi bruger cookies for at give dig den bedste oplevelse på vores hjemmeside.",
    "Denne hjemmeside anvender cookies til statistik og markedsføring.",
    "Ved at klikke på Accepter giver du samtykke til cookies. Læs vores cookiepolitik.",
    "Læs mere i vores privatlivspolitik om hvordan vi behandler dine data.",
    "Du kan til enhver tid ændre dit samtykke til cookies.",
    "Se vores vilkår for brug og handelsbetingelser.",
    "This website uses cookies to improve your experience.",
]
SPAM_WORDS = ["billig", "rejse", "tilbud", "hotel", "København", "fly", "bedste", "pris", "online", "køb", "gratis",
              "casino", "bonus", "lån", "hurtigt"]
LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
         "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.")
CODE = """function visMenu(id) {
  var el = document.getElementById(id);
  if (el.style.display === "none") { el.style.display = "block"; } else { el.style.display = "none"; }
}
$(document).ready(function() { visMenu("menu"); });
.header { color: #333; font-size: 14px; }"""
FALLBACK_VOCAB = ["hun", "han", "de", "vi", "det", "den", "en", "et", "og", "i", "at", "på", "til", "med", "for", "som", "er", "var", "har", "blev", "fra", "af", "der", "kommunen", "byen", "skolen", "børnene", "regeringen", "vejret", "museet", "borgerne", "forslaget", "mødet", "året", "dagen", "landet", "huset", "besluttede", "fortalte", "viste", "åbnede", "sagde", "mente", "fandt", "købte", "byggede", "skrev", "ny", "gammel", "stor", "lille", "vigtig", "dansk", "lokal", "næste", "sidste", "hele", "mange", "flere"]


# --------------------------------------------------------------------------------------------
# Corpus


def ud_sentences(name: str) -> list[str]:
    path = UD / name
    return [line[len("# text = "):].strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("# text = ")]


def fallback_sentences(rng: random.Random, count: int = 600) -> list[str]:
    out = []
    for _ in range(count):
        words = rng.choices(FALLBACK_VOCAB, k=rng.randint(6, 18))
        out.append(" ".join(words).capitalize() + rng.choice([".", ".", ".", "!", "?"]))
    return out


def prose(rng: random.Random, sentences: list[str], target: int, per_line: tuple[int, int] = (1, 4),
          blank_lines: bool = True) -> str:
    picked = rng.sample(sentences, min(len(sentences), 60))
    lines, size, i = [], 0, 0
    while size < target and i < len(picked):
        k = rng.randint(*per_line)
        line = " ".join(picked[i : i + k])
        i += k
        lines.append(line)
        size += len(line) + 1
    return ("\n\n" if blank_lines and rng.random() < 0.6 else "\n").join(lines)


def make_document(rng: random.Random, sentences: list[str]) -> tuple[str, str]:
    """One ~2 KB document and its kind."""
    r = rng.random()
    target = rng.randint(1700, 2700)
    if r < 0.45:
        return "prose", prose(rng, sentences, target)
    if r < 0.55:  # prose with menus, headings and a cookie banner around it
        head = " | ".join(rng.sample(MENU_WORDS, rng.randint(4, 9)))
        body = prose(rng, sentences, target - 400)
        tail = "\n".join(rng.sample(COOKIE_LINES, rng.randint(1, 3)))
        return "boilerplate", f"{head}\n{rng.choice(MENU_WORDS)}\n{body}\n{tail}\n© 2024 {rng.choice(MENU_WORDS)}"
    if r < 0.60:  # menu-only pages
        lines = [" ".join(rng.sample(MENU_WORDS, rng.randint(1, 3))) for _ in range(rng.randint(20, 60))]
        return "menu", "\n".join(lines)
    if r < 0.64:  # cookie banners with a little text
        lines = rng.choices(COOKIE_LINES, k=rng.randint(6, 20)) + rng.sample(sentences, rng.randint(1, 4))
        rng.shuffle(lines)
        return "cookie", "\n".join(lines)
    if r < 0.68:  # keyword spam
        words = [rng.choice(SPAM_WORDS[: rng.randint(3, len(SPAM_WORDS))]) for _ in range(rng.randint(150, 350))]
        text = " ".join(words)
        if rng.random() < 0.5:
            text = ". ".join(text[i : i + 80] for i in range(0, len(text), 80)) + "."
        return "spam", text
    if r < 0.72:  # repeated lines or paragraphs
        base = rng.sample(sentences, rng.randint(3, 8))
        lines = [rng.choice(base) for _ in range(rng.randint(10, 30))]
        return "repeated", ("\n\n" if rng.random() < 0.5 else "\n").join(lines)
    if r < 0.75:  # bullet lists
        items = rng.sample(sentences, rng.randint(8, 25))
        bullet = rng.choice(["- ", "• ", "* "])
        return "list", "\n".join(bullet + s for s in items)
    if r < 0.78:  # tables of numbers
        rows = [" ".join(f"{rng.uniform(0, 9999):.{rng.randint(0, 2)}f}" for _ in range(rng.randint(3, 8)))
                for _ in range(rng.randint(20, 60))]
        return "numbers", "\n".join(rows)
    if r < 0.80:
        return "code", prose(rng, sentences, 800) + "\n" + CODE
    if r < 0.82:
        return "lorem", prose(rng, sentences, 1200) + "\n" + LOREM
    if r < 0.88:  # short pages near the word and sentence thresholds
        return "short", " ".join(rng.sample(sentences, rng.randint(1, 7)))
    if r < 0.91:  # hashtags and ellipses
        words = prose(rng, sentences, target).split(" ")
        marks = rng.choice(["#", "...", "…"])
        rate = rng.uniform(0.02, 0.2)
        return "symbols", " ".join(f"{marks}{w}" if marks == "#" and rng.random() < rate else
                                   (w + marks if rng.random() < rate else w) for w in words)
    if r < 0.95:  # one sentence per line, some without terminal punctuation
        lines = rng.sample(sentences, rng.randint(5, 25))
        return "lines", "\n".join(s.rstrip(".!?") if rng.random() < rng.random() else s for s in lines)
    # prose with a random share of lines repeated: near the repetition thresholds
    lines = prose(rng, sentences, target, blank_lines=False).split("\n")
    extra = [rng.choice(lines) for _ in range(int(len(lines) * rng.uniform(0.1, 0.6)))]
    mixed = lines + extra
    rng.shuffle(mixed)
    return "near_repeat", "\n".join(mixed)


def build_corpus(count: int, seed: int = 13) -> tuple[list[tuple[str, str]], str]:
    rng = random.Random(seed)
    if (UD / "da_ddt-ud-dev.conllu").exists():
        sentences, origin = ud_sentences("da_ddt-ud-dev.conllu"), "real Danish UD sentences (da_ddt dev)"
    else:
        sentences, origin = fallback_sentences(rng), "generated sentences (../shared absent)"
    return [make_document(rng, sentences) for _ in range(count)], origin


# --------------------------------------------------------------------------------------------
# The two sides


def datatrove_steps(settings: dict[str, Any]) -> list[Any]:
    """datatrove's three filters configured with nordpipe's settings for one language."""
    import datatrove.pipeline.filters.c4_filters as c4_module
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter

    gq, gr, c4 = settings["gopher_quality"], settings["gopher_repetition"], settings["c4"]
    # datatrove reads its policy phrases from a module constant at call time: give it ours.
    c4_module.POLICY_SUBSTRINGS = [p.lower() for p in c4["policy_phrases"] + c4["policy_phrases_extra"]]
    language = "dan"
    return [
        GopherRepetitionFilter(
            dup_line_frac=gr["dup_line_frac"], dup_para_frac=gr["dup_para_frac"],
            dup_line_char_frac=gr["dup_line_char_frac"], dup_para_char_frac=gr["dup_para_char_frac"],
            top_n_grams=[tuple(x) for x in gr["top_n_grams"]], dup_n_grams=[tuple(x) for x in gr["dup_n_grams"]],
            language=language,
        ),
        GopherQualityFilter(
            min_doc_words=gq["min_doc_words"], max_doc_words=gq["max_doc_words"],
            min_avg_word_length=gq["min_avg_word_length"], max_avg_word_length=gq["max_avg_word_length"],
            max_symbol_word_ratio=gq["max_symbol_word_ratio"], max_bullet_lines_ratio=gq["max_bullet_lines_ratio"],
            max_ellipsis_lines_ratio=gq["max_ellipsis_lines_ratio"],
            max_non_alpha_words_ratio=gq["max_non_alpha_words_ratio"], min_stop_words=gq["min_stop_words"],
            stop_words=list(gq["stop_words"]), language=language,
        ),
        C4QualityFilter(
            split_paragraph=c4["split_paragraph"], remove_citations=c4["remove_citations"],
            filter_no_terminal_punct=c4["filter_no_terminal_punct"], min_num_sentences=c4["min_num_sentences"],
            min_words_per_line=c4["min_words_per_line"], max_word_length=c4["max_word_length"],
            filter_lorem_ipsum=c4["filter_lorem_ipsum"], filter_javascript=c4["filter_javascript"],
            filter_curly_bracket=c4["filter_curly_bracket"], filter_policy=c4["filter_policy"], language=language,
        ),
    ]


def run_datatrove(steps: list[Any], texts: list[str]) -> tuple[list[str | None], list[str], float, float]:
    """Each document through the three filters in order.

    Returns (reason or None per document, final texts, wall seconds, CPU seconds of this process).
    """
    from datatrove.data import Document

    reasons: list[str | None] = []
    finals: list[str] = []
    wall, cpu = time.perf_counter(), time.process_time()
    for i, text in enumerate(texts):
        doc = Document(text=text, id=str(i))
        reason = None
        for step in steps:
            result = step.filter(doc)
            if result is not True:
                reason = f"{DATATROVE_STEPS[step.name]}:{DATATROVE_RULES.get(result[1], result[1])}"
                break
        reasons.append(reason)
        finals.append(doc.text)
    return reasons, finals, time.perf_counter() - wall, time.process_time() - cpu


def run_nordpipe(steps: list[Any], texts: list[str]) -> tuple[list[str | None], list[str], float, float]:
    """The same documents through nordpipe's steps, as a datatrove pipeline runs them."""
    from datatrove.data import Document

    from nordpipe.documents import removal_reason

    docs = [Document(text=text, id=str(i), metadata={}) for i, text in enumerate(texts)]
    wall, cpu = time.perf_counter(), time.process_time()
    stream: Any = iter(docs)
    for step in steps:
        stream = step.run(stream)
    out = list(stream)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return [removal_reason(d) for d in out], [d.text for d in out], wall, cpu


def run_side_by_side(ours: list[Any], theirs: list[Any], texts: list[str], chunk: int = 250) -> dict[str, Any]:
    """Alternate chunks of documents between the two sides so both see the same machine load."""
    result: dict[str, Any] = {"ours": [], "theirs": [], "our_texts": [], "their_texts": [],
                              "our_wall": 0.0, "our_cpu": 0.0, "their_wall": 0.0, "their_cpu": 0.0}
    for start in range(0, len(texts), chunk):
        part = texts[start : start + chunk]
        reasons, finals, wall, cpu = run_datatrove(theirs, part)
        result["theirs"] += reasons
        result["their_texts"] += finals
        result["their_wall"] += wall
        result["their_cpu"] += cpu
        reasons, finals, wall, cpu = run_nordpipe(ours, part)
        result["ours"] += reasons
        result["our_texts"] += finals
        result["our_wall"] += wall
        result["our_cpu"] += cpu
    return result


# datatrove's step and rule names -> nordpipe's, to compare reasons.
DATATROVE_STEPS = {"👯 Gopher Repetition": "gopher_repetition", "🥇 Gopher Quality": "gopher_quality",
                   "⛰ C4 Quality": "c4"}
DATATROVE_RULES = {
    "gopher_short_doc": "short_doc", "gopher_long_doc": "long_doc",
    "gopher_below_avg_threshold": "below_avg_word_length", "gopher_above_avg_threshold": "above_avg_word_length",
    "gopher_too_many_hashes": "too_many_hashes", "gopher_too_many_ellipsis": "too_many_ellipsis",
    "gopher_too_many_bullets": "too_many_bullets", "gopher_too_many_end_ellipsis": "too_many_end_ellipsis",
    "gopher_below_alpha_threshold": "below_alpha_ratio", "gopher_enough_stop_words": "stop_words",
}


# --------------------------------------------------------------------------------------------
# Language identification


def langid_paragraphs(rng: random.Random, sentences: list[str], count: int) -> list[str]:
    return [" ".join(rng.sample(sentences, rng.randint(1, 3))) for _ in range(count)]


def bench_langid(texts: list[str], rng: random.Random) -> dict[str, Any]:
    from datatrove.data import Document

    from nordpipe.langid import LanguageIdentifier, detector_languages

    result: dict[str, Any] = {"languages": ",".join(detector_languages())}
    step = LanguageIdentifier()
    step.identify("Det er en lille test af sprogmodellerne.")  # load lingua's models outside the timings
    accuracy: dict[str, Any] = {}
    if UD.exists():
        for code, name in (("da", "da_ddt-ud-dev.conllu"), ("sv", "sv_talbanken-ud-dev.conllu")):
            paragraphs = langid_paragraphs(rng, ud_sentences(name), 1000)
            docs = [Document(text=p, id=str(i), metadata={}) for i, p in enumerate(paragraphs)]
            started = time.perf_counter()
            out = list(step.run(iter(docs)))
            seconds = time.perf_counter() - started
            labels = Counter(d.metadata["nordpipe"].get("language") for d in out)
            accuracy[code] = {"paragraphs": len(out), "correct": labels[code], "accuracy": labels[code] / len(out),
                              "confusions": dict(labels.most_common()), "paragraphs_per_s": len(out) / seconds}
    result["accuracy"] = accuracy
    docs = [Document(text=t, id=str(i), metadata={}) for i, t in enumerate(texts)]
    started = time.perf_counter()
    list(step.run(iter(docs)))
    seconds = time.perf_counter() - started
    result["docs_per_s"] = len(docs) / seconds
    result["mb_per_s"] = sum(len(t.encode()) for t in texts) / seconds / 1e6
    return result


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20_000, help="documents in the corpus (default 20,000)")
    parser.add_argument("--quick", action="store_true", help="1,000 documents: a smoke run")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--examples", type=int, default=2, help="examples printed per kind of disagreement")
    parser.add_argument("--skip-langid", action="store_true")
    parser.add_argument("--results", help="also write the report (markdown) to this file")
    args = parser.parse_args()
    count = 1000 if args.quick else args.docs

    sys.path.insert(0, str(REPO / "src"))
    import datatrove

    from nordpipe.quality import DATATROVE_RULES, load_settings, quality_steps

    corpus, origin = build_corpus(count, args.seed)
    texts = [text for _, text in corpus]
    kinds = [kind for kind, _ in corpus]
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    settings = load_settings()["da"]
    out: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    load_before = os.getloadavg()
    say("# Quality filters: nordpipe vs datatrove")
    say()
    say(f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; machine: {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}; datatrove {datatrove.__version__ if hasattr(datatrove, '__version__') else '0.10.1'}")
    say(f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`")
    say(f"- corpus: {count:,} documents, {megabytes:.1f} MB, mean {megabytes * 1e6 / count:,.0f} bytes; "
        f"prose from {origin}; kinds: " + ", ".join(f"{k} {v}" for k, v in Counter(kinds).most_common()))
    say(f"- load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    say()

    ours = quality_steps(settings=None, default_language="da")
    theirs = datatrove_steps(copy.deepcopy(settings))
    # Warm both up (spaCy pipeline, lazy tables) outside the timings.
    run_datatrove(theirs, texts[:20])
    run_nordpipe(quality_steps(settings=None, default_language="da"), texts[:20])

    side = run_side_by_side(ours, theirs, texts)
    their_reasons, their_texts = side["theirs"], side["their_texts"]
    # Agreement is judged on the rules both share: nordpipe with its departures from datatrove
    # turned off (DATATROVE_RULES, module docstring of nordpipe.quality); the shipped settings'
    # departures are reported apart below. Speed is of the shipped settings.
    shipped_reasons, _, _, _ = run_nordpipe(quality_steps(settings=None, default_language="da"), texts)
    our_reasons, our_texts, _, _ = run_nordpipe(quality_steps(settings=DATATROVE_RULES, default_language="da"), texts)

    say("## Speed (one process, filters only, same documents, alternating chunks of 250 in one run)")
    say()
    say("| side | wall s | CPU s | docs/s (CPU) | MB/s (CPU) | docs/s (wall) |")
    say("|---|---|---|---|---|---|")
    for label, key in (("datatrove", "their"), ("nordpipe", "our")):
        wall, cpu = side[f"{key}_wall"], side[f"{key}_cpu"]
        say(f"| {label} Gopher repetition + Gopher quality + C4 | {wall:.1f} | {cpu:.1f} | {count / cpu:,.0f} | "
            f"{megabytes / cpu:.2f} | {count / wall:,.0f} |")
    say()
    say(f"Speed-up: **{side['their_cpu'] / side['our_cpu']:.1f}x** by CPU time, "
        f"{side['their_wall'] / side['our_wall']:.1f}x by wall time (target >= 30x, >= 3,000 docs/s per core). "
        "CPU time is this process's own, so other users of the shared machine distort it less than wall time.")
    say()

    agree = sum((a is None) == (b is None) for a, b in zip(their_reasons, our_reasons, strict=True))
    kept_both = [i for i, (a, b) in enumerate(zip(their_reasons, our_reasons, strict=True)) if a is None and b is None]
    same_text = sum(their_texts[i] == our_texts[i] for i in kept_both)
    say("## Agreement (keep/drop per document) on the shared rules")
    say()
    say("nordpipe side: `quality_steps(DATATROVE_RULES)`, i.e. the shipped thresholds with nordpipe's deliberate "
        "departures from datatrove's rules (dialogue dashes, alpha ratio over words, top n-gram only when it "
        "repeats) turned off; the departures are measured in the next section.")
    say()
    say(f"- agreement: **{agree:,} / {count:,} = {agree / count:.2%}** (target >= 99%)")
    say(f"- kept by datatrove: {sum(r is None for r in their_reasons):,}; kept by nordpipe: "
        f"{sum(r is None for r in our_reasons):,}")
    say(f"- same removal rule where both removed: "
        f"{sum(a == b for a, b in zip(their_reasons, our_reasons, strict=True) if a and b):,} of "
        f"{sum(bool(a and b) for a, b in zip(their_reasons, our_reasons, strict=True)):,}")
    say(f"- identical output text where both kept (C4 drops lines): {same_text:,} of {len(kept_both):,}")
    say()
    rules: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], list[int]] = {}
    for i, (a, b) in enumerate(zip(their_reasons, our_reasons, strict=True)):
        if (a is None) != (b is None):
            key = (a or "kept", b or "kept")
            rules[key] += 1
            examples.setdefault(key, []).append(i)
    if rules:
        say("| datatrove | nordpipe | documents | kinds |")
        say("|---|---|---|---|")
        for (a, b), n in rules.most_common():
            kind_counts = Counter(kinds[i] for i in examples[(a, b)])
            say(f"| {a} | {b} | {n} | {', '.join(f'{k} {v}' for k, v in kind_counts.most_common())} |")
        say()
    removal_table = Counter(r for r in our_reasons if r)
    say("nordpipe removals by reason: " + ", ".join(f"{r} {n}" for r, n in removal_table.most_common()))
    say()
    departed = Counter((a or "kept", b or "kept") for a, b in zip(our_reasons, shipped_reasons, strict=True) if a != b)
    departed_kinds: dict[tuple[str, str], Counter[str]] = {}
    for i, (a, b) in enumerate(zip(our_reasons, shipped_reasons, strict=True)):
        if a != b:
            departed_kinds.setdefault((a or "kept", b or "kept"), Counter())[kinds[i]] += 1
    say("## Departures: shipped settings vs the shared rules (same documents)")
    say()
    say(f"- documents judged differently: {sum(departed.values()):,} of {count:,}; kept with the shared rules: "
        f"{sum(r is None for r in our_reasons):,}, with the shipped settings: {sum(r is None for r in shipped_reasons):,}")
    say()
    if departed:
        say("| shared rules (= datatrove's) | shipped settings | documents | kinds |")
        say("|---|---|---|---|")
        for (a, b), n in departed.most_common():
            say(f"| {a} | {b} | {n} | {', '.join(f'{k} {v}' for k, v in departed_kinds[(a, b)].most_common())} |")
        say()
    for key, ids in examples.items():
        for i in ids[: args.examples]:
            print(f"--- disagreement {key} doc {i} ({kinds[i]}):\n{texts[i][:1500]}\n", file=sys.stderr)

    if not args.skip_langid:
        rng = random.Random(args.seed + 1)
        lid = bench_langid(texts, rng)
        say("## Language identification (lingua)")
        say()
        say(f"- detector languages: {lid['languages']}")
        if lid["accuracy"]:
            say()
            say("| language | paragraphs (1-3 real UD sentences) | correct | accuracy | labels given | paragraphs/s |")
            say("|---|---|---|---|---|---|")
            for code, row in lid["accuracy"].items():
                labels = ", ".join(f"{k} {v}" for k, v in row["confusions"].items())
                say(f"| {code} | {row['paragraphs']:,} | {row['correct']:,} | {row['accuracy']:.1%} | {labels} | "
                    f"{row['paragraphs_per_s']:,.0f} |")
        else:
            say("- accuracy: not measured (../shared/data/ud absent)")
        say()
        say(f"- cost on the {count:,} benchmark documents (~2 KB): {lid['docs_per_s']:,.0f} docs/s, "
            f"{lid['mb_per_s']:.2f} MB/s on one core (reported apart from the filters)")
        say()
    load_after = os.getloadavg()
    say(f"- load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    try:
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        say(f"- uptime: {uptime}")
    except OSError:
        pass
    if args.results:
        Path(args.results).write_text("\n".join(out) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
