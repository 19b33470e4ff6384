"""HTML -> plain text for WARC ingest: the page's main text, with every sentence kept whole.

``html_to_text(page, url)`` is the whole interface: raw HTML bytes (or str) in, the main text out,
one paragraph or list item a line, ``""`` when the page has no main text (ingest quarantines such
a record as ``empty text``). Navigation, cookie banners, share buttons, tag lines, related-article
lists, footers and reader comments are left out; the text of inline elements (``<a>``, ``<em>``,
``<strong>``, ``<span>``, ``<abbr>``, ...) stays inside its sentence, without markup (no Markdown
links or ``**``, which would split sentences for the later filters and the tokenizer).

Choice, by measurement (``benchmarks/bench_extract.py``, results in benchmarks/results/extract.md;
every extractor in its own process over the same pages in one run): trafilatura >= 2 with its
default precision/recall balance and ``include_comments=False``, fallback extractors on.

Before (trafilatura 1.11, ``favor_precision=True``) ingest lost inline text: 1.11's precision mode
discards every div/p/section/span whose id or class *contains* ``link`` or ``bottom``, so
``<a><span class="span__link--on-dark">Allen Institute for AI</span></a>`` vanished and left
``part of the , a nonprofit`` (issue 19). Precision mode also drops every ``<header>``, where HTML5
news pages put the article's title and lead paragraph, and on real pages it kept 759 characters of
joe.cat where the default balance keeps 14,842 (the bio and paper abstracts). trafilatura 2.x fixed
the ``link`` substring (a whole class token now, so ``<span class="link">`` inside a sentence is
still cut) but not the ``<header>`` rule.

Measured on 240 generated pages (real UD/NorNE da, sv, nb, nn sentences; inline markup inside
70% of them; nav, cookie banner, share buttons, tag line, related list, footer and comments around;
three layouts, one with the lead paragraph in ``<article><header>``) and on the 23 real response
records of the shared WARCs (run of 2026-12-07; pages/s per core, CPU time, machine under load):

=========================================  ======  ======  =======  =======  ========  =====  ======  =======  =========
extractor                                  recall  inline  inline   boiler-  comments  real   WET     real     generated
                                           whole   whole   dropped  plate    leaked    issue  recall  pages/s  pages/s
=========================================  ======  ======  =======  =======  ========  =====  ======  =======  =========
trafilatura 1.11 favor_precision (before)  70.7%   64.4%   463      0.1%     0.8%      0/2    20%     49       184
trafilatura 1.11 default                   97.6%   100%    0        0.0%     1.2%      2/2    60%     65       236
trafilatura 2.3.1 favor_precision          77.6%   75.1%   355      0.0%     0.0%      2/2    60%     58       200
trafilatura 2.3.1 default (chosen)         97.6%   100%    0        0.0%     0.0%      2/2    60%     35       268
trafilatura 2.3.1 default, fast=True       97.6%   100%    0        0.0%     0.0%      2/2    60%     81       383
trafilatura 2.3.1 favor_recall             97.7%   100%    0        0.5%     0.0%      2/2    60%     46       285
resiliparse main_content                   99.4%   99.1%   17       8.0%     100%      2/2    50%     529      3820
justext (Nordic+English stoplists)         97.6%   97.4%   0        7.4%     15.0%     1/2    0%      85       265
boilerpy3 ArticleExtractor                 99.9%   99.9%   0        18.4%    1.2%      0/2    0%      136      535
=========================================  ======  ======  =======  =======  ========  =====  ======  =======  =========

- The 2.4% that every trafilatura setting misses are the ``<h1>`` titles of one layout (taken as
  page metadata). On the real pages the chosen setting extracts 94,260 characters against 78,751
  for 2.3.1 favor_precision and 75,352 before; the difference is nearly all content (joe.cat's bio
  and paper abstracts, a publication list) plus a few headings and one licence line.
- trafilatura 1.11 default is as good on generated pages (but leaks 1.2% of comments) and loses
  joe.cat's text too (78,088 characters); 2.x also writes tables as rows (``| a | b |``) instead of
  one cell a line. Hence ``trafilatura>=2.0`` in pyproject and the import check below.
- ``fast=True`` (no readability/justext fallback) is 2.3x faster on real pages but extracts 80,636
  characters instead of 94,729 there: the fallback is what recovers joe.cat. Kept on.
- favor_recall leaks boilerplate (0.5%) for 0.1% more recall; ``include_formatting`` writes
  ``**``/Markdown into sentences (37.5% of inline sentences whole with favor_precision).
- resiliparse ``main_content`` is ~10x faster but leaks 8% of boilerplate and every comment;
  justext and boilerpy3 leak 7-18% of boilerplate and cut the issue sentences; inscriptis and
  html-text render the whole page (reference renders, not extractors).
- Tried and not kept: a pass removing class/id/style of inline elements inside running text
  before trafilatura. With favor_precision it brought the inline-dropped sentences to 0 but not
  the ``<header>`` losses; with the default balance it changed no page, so it would be dead weight.
- Cost: real pages extract at ~35 pages/s per core instead of ~49 (more text kept, fallback
  runs); generated pages at ~268 instead of ~184. ``nordpipe ingest`` of a 2,000-page WARC
  (mostly generated pages) ran at 26-29 pages/s before and after alike on the loaded machine.

The only change to trafilatura's text: whitespace-only lines are dropped and trailing whitespace
is cut (2.x keeps the source's indentation runs as lines of tabs and spaces on some pages); no
line with a letter or digit is touched apart from its trailing whitespace.
"""

from __future__ import annotations

import copy

import trafilatura
from trafilatura.settings import Extractor

if int(trafilatura.__version__.split(".")[0]) < 2:
    raise ImportError(
        f"nordpipe needs trafilatura>=2.0, found {trafilatura.__version__}: 1.x loses page text that 2.x keeps "
        "(benchmarks/results/extract.md); pip install -U 'trafilatura>=2.0'"
    )

# include_comments=False: reader comments are not the page's text (often replies, quotes, spam).
# No favor_precision: its rules drop <header> content and cut sentences at <span class="link">.
EXTRACT_SETTINGS: dict[str, bool] = {"include_comments": False}


# ``trafilatura.extract(page, url=url, **settings)`` builds an ``Extractor`` (its options) for
# every page: reading a dozen config values and htmldate's parameters, ~10% of a generated page's
# extraction (cProfile of ``nordpipe ingest`` on the sample's web dump, issue 20). The options
# differ between pages only in ``url`` and ``source`` (derived from the URL exactly as
# ``Extractor.__init__`` does below), so one template is built with trafilatura's own
# constructor and each page gets a shallow copy with its URL set: the same options object
# ``extract`` would build, passed through its ``options=`` parameter. A copy per page, because
# extraction may set attributes on the options it is given.
_OPTIONS_TEMPLATE = Extractor(comments=EXTRACT_SETTINGS["include_comments"])


def extract_options(url: str | None) -> Extractor:
    """The options ``trafilatura.extract(page, url=url, **EXTRACT_SETTINGS)`` would build."""
    options = copy.copy(_OPTIONS_TEMPLATE)
    options.url = url
    source = url or None  # as ``Extractor.__init__``: ``url or source``, source None
    options.source = source and source.encode("utf-8", "replace").decode("utf-8")
    return options


def html_to_text(page: bytes | str, url: str | None = None) -> str:
    """The main text of one HTML page, one block a line; ``""`` when nothing is found."""
    if not page:
        return ""
    text = trafilatura.extract(page, options=extract_options(url)) or ""
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())
