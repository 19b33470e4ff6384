"""Per-language quality settings: the shipped ``nordpipe/data/quality/<lang>.yaml`` files and a
run's overrides.

Its own module so both the quality filters (``nordpipe.quality``) and language identification
(``nordpipe.langid``, for ``language_id.min_score``) read settings without importing each other.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from nordpipe.languages import LANGUAGES, UnknownLanguage, expand_language, valid_codes_text

SECTIONS = ("abbreviations", "language_id", "gopher_quality", "gopher_repetition", "c4")
"""Sections of a settings file that a run may override."""

@lru_cache(maxsize=1)
def _shipped_settings() -> dict[str, dict[str, Any]]:
    folder = resources.files("nordpipe") / "data" / "quality"
    return {lang: yaml.safe_load((folder / f"{lang}.yaml").read_text(encoding="utf-8")) for lang in LANGUAGES}


def _merge(base: dict[str, Any], override: Mapping[str, Any], where: str) -> None:
    for key, value in override.items():
        if key not in base:
            raise ValueError(f"settings: unknown key {where}{key!r} (known: {', '.join(sorted(base))})")
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ValueError(f"settings: {where}{key} must be a mapping")
            _merge(base[key], value, f"{where}{key}.")
        else:
            base[key] = value


class QualitySettings(dict):  # type: ignore[type-arg]
    """Settings of every language in ``LANGUAGES`` (``load_settings``' result): language -> sections."""


def load_settings(override: str | Mapping[str, Any] | None = None) -> QualitySettings:
    """The per-language settings: shipped files, then ``override`` on top.

    ``override`` is a YAML file path (or the parsed mapping) keyed by language code (a group such as ``no``
    sets both ``nb`` and ``nn``), or ``all`` for every language, holding only the values to change::

        all:
          c4: {min_num_sentences: 3}
        da:
          gopher_quality: {min_stop_words: 3, stop_words: [og, i, at, det]}

    Unknown languages or keys raise ``ValueError`` naming them (a typo must not pass silently).
    """
    if isinstance(override, QualitySettings):
        return override
    settings = QualitySettings(copy.deepcopy(_shipped_settings()))
    if override is None:
        return settings
    if isinstance(override, str):
        with open(override, encoding="utf-8") as handle:
            override = yaml.safe_load(handle) or {}
    if not isinstance(override, Mapping):
        raise ValueError("settings: the file must hold a mapping of language codes to sections")
    for code, sections in override.items():
        try:
            targets = list(LANGUAGES) if code in ("all", "*") else list(expand_language(code))
        except UnknownLanguage:
            raise ValueError(f"settings: unknown language {code!r} (valid: all, {valid_codes_text()})") from None
        if not isinstance(sections, Mapping):
            raise ValueError(f"settings: {code} must map section names to values")
        for section in sections:
            if section not in SECTIONS:
                raise ValueError(f"settings: unknown section {code}.{section} (known: {', '.join(SECTIONS)})")
        for lang in targets:
            _merge(settings[lang], {k: v for k, v in sections.items()}, f"{code}.")  # type: ignore[union-attr]
    return settings
