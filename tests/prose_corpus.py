"""Real-prose and junk documents for judging the quality filters (tests and benchmarks/bench_prose.py).

Real prose (``real_documents``) is composed from real sentences in ``../shared/data`` -- never
copied into the repository (NorNE's texts may not be republished):

- da: UD Danish-DDT dev (``ud/da_ddt-ud-dev.conllu``, 564 sentences in corpus order, no document
  or paragraph marks) followed by the DDT training sentences of ``ner/da_ddt-ud-ner-train-10k.conll``
  (one token per line; detokenized here: no space before ``, . : ; ! ? ) %`` or after ``(``).
- sv: UD Swedish-Talbanken dev (``ud/sv_talbanken-ud-dev.conllu``): ``# newdoc`` starts a source
  text, ``# newpar`` a paragraph.
- nb, nn: NorNE dev (``ner/norne-no_{bokmaal,nynorsk}-ud-dev.conllu``): one stream in corpus
  order (no document marks, sentence ids without gaps), ``# newpar`` starts a paragraph.

A document is a run of consecutive sentences of one stream, cut without overlap (each sentence
is used once per length bucket): sentences are taken until the document holds at least the
target number of whitespace-separated words, the target drawn per document (seeded) from the
bucket's range -- ``paragraph`` 50-150 words (a sentence that would pass 150 ends the document
before it, unless the document still has fewer than 50), ``article`` 300-450 words. A source
text of Swedish ends the document early if it already has the bucket's minimum, otherwise the
document continues into the next source text. Paragraph marks become blank lines (``"\\n\\n"``);
where the source has none (da) sentences are grouped into paragraphs of 1-4 sentences.

Junk (``junk_documents``) is generated (seeded) per language from the language's own words.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

LANGUAGE_SOURCES = {
    "da": ("ud/da_ddt-ud-dev.conllu", "ner/da_ddt-ud-ner-train-10k.conll"),
    "nb": ("ner/norne-no_bokmaal-ud-dev.conllu",),
    "nn": ("ner/norne-no_nynorsk-ud-dev.conllu",),
    "sv": ("ud/sv_talbanken-ud-dev.conllu",),
}
BUCKETS = {"paragraph": (50, 150), "article": (300, 450)}

# A sentence, and whether it starts a new paragraph / a new source text.
Sentence = tuple[str, bool, bool]


def ud_sentences(shared: Path, name: str) -> list[str]:
    """The ``# text =`` sentences of a CoNLL-U file under ``shared/data/ud``."""
    text = (shared / "data" / "ud" / name).read_text(encoding="utf-8")
    return [line[len("# text = "):].strip() for line in text.splitlines() if line.startswith("# text = ")]


def compose(rng: random.Random, sentences: list[str], target: int = 2000) -> str:
    """A document of paragraphs of 1-4 sentences sampled anywhere, ~``target`` characters."""
    picked = rng.sample(sentences, min(60, len(sentences)))
    paragraphs, size, i = [], 0, 0
    while size < target and i < len(picked):
        k = rng.randint(1, 4)
        paragraphs.append(" ".join(picked[i : i + k]))
        i += k
        size += len(paragraphs[-1])
    return "\n\n".join(paragraphs)


def conllu_stream(path: Path) -> Iterator[Sentence]:
    """(sentence, starts a paragraph, starts a source text) from ``# text``/``# newpar``/``# newdoc``."""
    new_par = new_doc = True
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# newdoc"):
            new_doc = new_par = True
        elif line.startswith("# newpar"):
            new_par = True
        elif line.startswith("# text = "):
            yield line[len("# text = "):].strip(), new_par, new_doc
            new_par = new_doc = False


_NO_SPACE_BEFORE = re.compile(r" ([,.:;!?)%])")
_NO_SPACE_AFTER = re.compile(r"\( ")


def conll_tokens_stream(path: Path) -> Iterator[Sentence]:
    """Sentences of a one-token-per-line file (blank line between sentences), detokenized."""
    tokens: list[str] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.strip() and not line.startswith("#"):
            tokens.append(line.split()[0])
        elif tokens:
            text = _NO_SPACE_AFTER.sub("(", _NO_SPACE_BEFORE.sub(r"\1", " ".join(tokens)))
            yield text, False, False
            tokens = []


_SENTENCE_ENDS = (".", "!", "?", '"', "'", "»", "”", "…", ")")


def _is_heading(sentence: str) -> bool:
    """A "sentence" without sentence-final punctuation: a heading, a list item or a lead-in
    ending in ":", which stands on a line of its own on a page."""
    return not sentence.rstrip().endswith(_SENTENCE_ENDS)


def language_stream(shared: Path, language: str) -> list[Sentence]:
    out: list[Sentence] = []
    for name in LANGUAGE_SOURCES[language]:
        path = shared / "data" / name
        out += conllu_stream(path) if name.endswith(".conllu") else conll_tokens_stream(path)
    return out


def _join(paragraph: list[str]) -> str:
    """A paragraph's sentences on one line, each heading on a line of its own."""
    lines: list[str] = []
    current: list[str] = []
    for sentence in paragraph:
        if _is_heading(sentence):
            if current:
                lines.append(" ".join(current))
                current = []
            lines.append(sentence)
        else:
            current.append(sentence)
    if current:
        lines.append(" ".join(current))
    return "\n".join(lines)


def real_documents(shared: Path, language: str, bucket: str, seed: int = 19) -> list[str]:
    """The documents of one language and length bucket (see the module docstring)."""
    low, high = BUCKETS[bucket]
    rng = random.Random(f"{seed}-{language}-{bucket}")
    stream = language_stream(shared, language)
    has_paragraphs = any(new_par for _, new_par, _ in stream[1:])
    documents: list[str] = []
    i = 0
    while i < len(stream):
        target = rng.randint(low, high)
        paragraphs: list[list[str]] = []
        words = 0
        group = 0  # sentences left in the current generated paragraph (streams without marks)
        while i < len(stream) and words < target:
            sentence, new_par, new_doc = stream[i]
            n = len(sentence.split())
            if paragraphs and new_doc and words >= low:
                break  # the source text ended: so does the document
            if bucket == "paragraph" and paragraphs and words + n > high and words >= low:
                break
            if has_paragraphs:
                starts = new_par or not paragraphs
            else:
                starts = group == 0
                group = rng.randint(1, 4) if starts else group
                group -= 1
            if starts:
                paragraphs.append([])
            paragraphs[-1].append(sentence)
            words += n
            i += 1
        if words >= low:  # the stream's tail shorter than the bucket is left out
            documents.append("\n\n".join(_join(p) for p in paragraphs))
    return documents


# --------------------------------------------------------------------------------------------
# Junk

DANISH_WORDS = [
    "kommunen", "byen", "skolen", "huset", "vejret", "regeringen", "borgerne", "forslaget", "mødet", "året",
    "dagen", "landet", "besluttede", "fortalte", "viste", "åbnede", "sagde", "mente", "fandt", "købte",
    "byggede", "skrev", "ny", "gammel", "stor", "lille", "vigtig", "dansk", "lokal", "næste", "sidste",
    "hele", "mange", "flere",
]
MENU = ["Forside", "Nyheder", "Sport", "Kultur", "Om os", "Kontakt", "Job", "Log ind", "Søg", "Shop", "Kurv", "Blog"]
COOKIES = [
    "Vi bruger cookies for at give dig den bedste oplevelse på vores hjemmeside.",
    "Denne hjemmeside anvender cookies til statistik og markedsføring.",
    "Ved at klikke på Accepter giver du samtykke til cookies.",
    "Læs mere i vores privatlivspolitik.",
    "Accepter alle",
    "Afvis",
    "Indstillinger",
]

# Per language: a few stop words, navigation items, a consent banner, footer lines, a template for generated
# shop pages ({0}, {1}: product, place) and "Read also" -- written here for the generators.
WEB_PARTS: dict[str, dict[str, list[str]]] = {
    "da": {
        "stop": ["i", "og", "på", "til", "for", "med", "det", "er"],
        "menu": MENU,
        "cookies": COOKIES,
        "footer": ["Kontakt os på tlf. 70 20 30 40", "Alle rettigheder forbeholdes.", "Del på Facebook", "Del på Twitter",
                   "Tilmeld dig vores nyhedsbrev", "Læs også:", "Mest læste", "Annonce", "CVR-nr. 12345678",
                   "Åbningstider: man-fre 9-17", "Følg os", "Til toppen"],
        "template": ["Køb {0} billigt i {1}.", "Find de bedste tilbud på {0} i {1} her.",
                     "Vi har {0} til den laveste pris i {1}.", "Bestil {0} online og få det leveret i {1} i morgen."],
        "products": ["sofaer", "cykler", "telefoner", "sko", "lamper", "dæk", "briller", "ure"],
        "places": ["København", "Aarhus", "Odense", "Aalborg", "Esbjerg", "Vejle", "Horsens", "Randers"],
    },
    "nb": {
        "stop": ["i", "og", "på", "til", "for", "med", "det", "er"],
        "menu": ["Forside", "Nyheter", "Sport", "Kultur", "Om oss", "Kontakt", "Jobb", "Logg inn", "Søk", "Butikk",
                 "Handlekurv", "Blogg"],
        "cookies": ["Vi bruker informasjonskapsler for å gi deg en bedre opplevelse.",
                    "Les mer i vår personvernerklæring.", "Ved å klikke Godta gir du samtykke til cookies.",
                    "Godta alle", "Avvis", "Innstillinger"],
        "footer": ["Kontakt oss på telefon 22 33 44 55", "Alle rettigheter reservert.", "Del på Facebook",
                   "Meld deg på vårt nyhetsbrev", "Les også:", "Mest lest", "Annonse", "Org.nr. 912 345 678",
                   "Åpningstider: man-fre 9-17", "Følg oss", "Til toppen"],
        "template": ["Kjøp {0} billig i {1}.", "Finn de beste tilbudene på {0} i {1} her.",
                     "Vi har {0} til laveste pris i {1}.", "Bestill {0} på nett og få det levert i {1} i morgen."],
        "products": ["sofaer", "sykler", "telefoner", "sko", "lamper", "dekk", "briller", "klokker"],
        "places": ["Oslo", "Bergen", "Trondheim", "Stavanger", "Tromsø", "Drammen", "Kristiansand", "Bodø"],
    },
    "nn": {
        "stop": ["i", "og", "på", "til", "for", "med", "det", "er"],
        "menu": ["Framside", "Nyhende", "Sport", "Kultur", "Om oss", "Kontakt", "Jobb", "Logg inn", "Søk", "Butikk",
                 "Handlekorg", "Blogg"],
        "cookies": ["Vi brukar informasjonskapslar for å gje deg ei betre oppleving.",
                    "Les meir i personvernerklæringa vår.", "Ved å klikke Godta gjev du samtykke til cookies.",
                    "Godta alle", "Avvis", "Innstillingar"],
        "footer": ["Kontakt oss på telefon 57 33 44 55", "Alle rettar reserverte.", "Del på Facebook",
                   "Meld deg på nyhendebrevet vårt", "Les òg:", "Mest lese", "Annonse", "Org.nr. 912 345 678",
                   "Opningstider: må-fr 9-17", "Følg oss", "Til toppen"],
        "template": ["Kjøp {0} billeg i {1}.", "Finn dei beste tilboda på {0} i {1} her.",
                     "Vi har {0} til lågaste pris i {1}.", "Bestill {0} på nett og få det levert i {1} i morgon."],
        "products": ["sofaer", "syklar", "telefonar", "sko", "lamper", "dekk", "briller", "klokker"],
        "places": ["Førde", "Voss", "Volda", "Ørsta", "Sogndal", "Florø", "Stord", "Odda"],
    },
    "sv": {
        "stop": ["i", "och", "på", "till", "för", "med", "det", "är"],
        "menu": ["Startsida", "Nyheter", "Sport", "Kultur", "Om oss", "Kontakt", "Jobb", "Logga in", "Sök", "Butik",
                 "Varukorg", "Blogg"],
        "cookies": ["Vi använder cookies för att ge dig en bättre upplevelse på vår webbplats.",
                    "Läs mer i vår integritetspolicy.", "Genom att klicka på Acceptera godkänner du cookies.",
                    "Acceptera alla", "Avvisa", "Inställningar"],
        "footer": ["Kontakta oss på telefon 08-123 45 67", "Alla rättigheter förbehållna.", "Dela på Facebook",
                   "Prenumerera på vårt nyhetsbrev", "Läs också:", "Mest läst", "Annons", "Org.nr 556677-8899",
                   "Öppettider: mån-fre 9-17", "Följ oss", "Till toppen"],
        "template": ["Köp {0} billigt i {1}.", "Hitta de bästa erbjudandena på {0} i {1} här.",
                     "Vi har {0} till lägsta pris i {1}.", "Beställ {0} på nätet och få dem levererade i {1} i morgon."],
        "products": ["soffor", "cyklar", "telefoner", "skor", "lampor", "däck", "glasögon", "klockor"],
        "places": ["Stockholm", "Göteborg", "Malmö", "Uppsala", "Västerås", "Örebro", "Linköping", "Umeå"],
    },
}
JUNK_KINDS = ("menu", "cookie", "spam", "lorem", "code", "numbers", "repeated", "boilerplate", "generated")


def content_words(sentences: list[str], count: int = 60, seed: int = 3) -> list[str]:
    """Longer words (6+ letters) of real sentences: the vocabulary of a language's junk."""
    words = sorted({w.strip(".,:;!?«»\"'()").lower() for s in sentences for w in s.split()})
    words = [w for w in words if len(w) >= 6 and w.isalpha()]
    return random.Random(seed).sample(words, min(count, len(words)))


def junk_documents(rng: random.Random, per_kind: int = 20, language: str = "da",
                   words: list[str] | None = None) -> dict[str, list[str]]:
    """Web junk of nine kinds, made up here (seeded), in ``language`` (da, nb, nn, sv), using
    ``words`` (default: a small Danish vocabulary) for the word-based kinds."""
    words = words or DANISH_WORDS
    parts = WEB_PARTS[language]
    menu, cookies = parts["menu"], parts["cookies"]
    kinds: dict[str, list[str]] = {k: [] for k in JUNK_KINDS}
    for _ in range(per_kind):
        kinds["menu"].append("\n".join(" | ".join(rng.sample(menu, rng.randint(1, 5))) for _ in range(rng.randint(15, 40))))
        # A consent banner: every line different, so only the C4 notice rules can catch it.
        banner = [*cookies, *rng.sample(menu, 3), " ".join(rng.sample(words, 8)).capitalize() + "."]
        rng.shuffle(banner)
        kinds["cookie"].append("\n".join(banner))
        spam_words = rng.sample(words, 4)
        kinds["spam"].append(" ".join(rng.choice(spam_words) for _ in range(rng.randint(200, 400))))
        # Placeholder text in an otherwise ordinary page.
        opener = {"sv": ["Det", "är", "en"], "nn": ["Det", "er", "ein"]}.get(language, ["Det", "er", "en"])
        lines = [" ".join([*opener, *rng.sample(words, 9)]) + "." for _ in range(12)]
        lines.insert(rng.randint(0, 12), "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.")
        kinds["lorem"].append("\n".join(lines))
        kinds["code"].append("\n".join(
            f"function f{i}(x) {{ var y = x * {rng.randint(1, 99)}; if (y > 10) {{ return y; }} return 0; }}"
            for i in range(rng.randint(15, 40))
        ))
        kinds["numbers"].append("\n".join(
            " ".join(f"{rng.uniform(0, 9999):.2f}" for _ in range(rng.randint(3, 8))) for _ in range(rng.randint(20, 60))
        ))
        line = " ".join(rng.sample(words, 8)).capitalize() + "."
        other = " ".join(rng.sample(words, 8)).capitalize() + "."
        kinds["repeated"].append("\n".join([line] * rng.randint(10, 30) + [other]))
        # A page of navigation, bullet-point menus, footer and teaser headlines: no article, but
        # 60+ words, so that Gopher's length rule alone does not settle it.
        teasers = [" ".join([*rng.sample(words, rng.randint(4, 7)), *rng.sample(parts["stop"], 2)]).capitalize()
                   + rng.choice(["", "...", ":"]) for _ in range(rng.randint(5, 9))]
        page = [" | ".join(rng.sample(menu, 5)), *("- " + item for item in rng.sample(menu, 6)), parts["footer"][4],
                *teasers, *rng.sample(parts["footer"], 8), f"© {rng.randint(2005, 2024)} {rng.choice(menu)}"]
        kinds["boilerplate"].append("\n".join(page))
        # Machine-generated shop pages: one template filled with products and places.
        sentences = [rng.choice(parts["template"]).format(rng.choice(parts["products"]), rng.choice(parts["places"]))
                     for _ in range(rng.randint(15, 40))]
        kinds["generated"].append("\n".join(" ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3)))
    return kinds


# --------------------------------------------------------------------------------------------
# Evaluation

EVALUATED_LANGUAGES = ("da", "nb", "nn", "sv")
GOALS = {"article": 0.98, "paragraph": 0.90, "junk_removed": 0.97}


def filter_reasons(texts: list[str], language: str, settings: object = None) -> list[str | None]:
    """Each text through the three quality filters of the ``nordpipe`` on ``sys.path`` with the
    settings of ``language`` (its true language): the removal reason, or None when kept."""
    from datatrove.data import Document

    from nordpipe.documents import removal_reason
    from nordpipe.quality import quality_steps

    docs = [Document(text=t, id=str(i), metadata={"nordpipe": {"language": language}}) for i, t in enumerate(texts)]
    stream: Iterator[Document] = iter(docs)
    for step in quality_steps(settings):
        stream = step.run(stream)
    return [removal_reason(doc) for doc in stream]


def language_junk(shared: Path | None, language: str, per_kind: int = 20, seed: int = 23) -> dict[str, list[str]]:
    """``junk_documents`` in ``language``, its vocabulary from the real sentences when
    ``shared`` is given (else the small Danish one)."""
    words = content_words([s for s, _, _ in language_stream(shared, language)]) if shared else None
    return junk_documents(random.Random(f"{seed}-{language}"), per_kind, language, words)
