"""The PII stage: find personal data in Nordic text and replace it (``nordpipe pii``).

- ``recognizers``: national identifiers (check digits via python-stdnum), phones, e-mail,
  IBAN/accounts, IP, cards, as ``PatternSpec``s;
- ``names``: offline person-name finder (Faker name lists, capitalisation, context), or a
  user-given spaCy / Hugging Face model;
- ``engine``: the fast scanner (prefilters, overlap resolution);
- ``replace``: ``tag`` and ``fake`` modes;
- ``step``: the datatrove step ``PiiReplace`` and ``run_pii``;
- ``presidio``: the same recognizers inside an offline presidio AnalyzerEngine (the reference,
  and ``--engine presidio``, which users extend with their own recognizer YAML);
- ``synthetic``: seeded labelled test documents.
"""

ENGINES = ("fast", "presidio")
"""``nordpipe pii --engine``: the fast scanner (default) or presidio's AnalyzerEngine."""
