"""The PII stage: find personal data in Nordic text and replace it (``nordpipe pii``).

- ``recognizers``: national identifiers (check digits via python-stdnum), phones, e-mail,
  IBAN/accounts, IP, cards, as ``PatternSpec``s;
- ``names``: offline person-name finder (Faker name lists, capitalisation, context), or a
  user-given spaCy / Hugging Face model;
- ``engine``: the fast scanner (prefilters, overlap resolution);
- ``replace``: ``tag`` and ``fake`` modes;
- ``fields``: personal data outside the text: metadata fields, URLs (percent-decoded pieces,
  re-encoded replacements), file names, document ids (``pii-<keyed hash>``);
- ``keys``: the secret key (``--key-file``/``--key-env``), read inside the task, never stored;
  HMAC-SHA256 for audit hashes, new ids and fake seeds;
- ``step``: the datatrove step ``PiiReplace`` and ``run_pii`` (also redacts the stage's own
  quarantine and removed records; audit 0600 in 0700 folders);
- ``presidio``: the same recognizers inside an offline presidio AnalyzerEngine (the reference,
  and ``--engine presidio``, which users extend with their own recognizer YAML);
- ``synthetic``: seeded labelled test documents.
"""

ENGINES = ("fast", "presidio")
"""``nordpipe pii --engine``: the fast scanner (default) or presidio's AnalyzerEngine."""
