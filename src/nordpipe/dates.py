"""Date normalization for ingest: unambiguous inputs become ``YYYY-MM-DD``; the rest is rejected.

Accepted: ISO dates and timestamps (``2020-09-24``, ``2020-09-24T20:08:09Z``, with offsets or a
space), RFC 2822 (``Thu, 24 Sep 2020 20:08:09 +0000``), the ctime-like form of old dumps
(``Thu Sep 24 20:08:09 2020 +0000``), a bare year (a range for ``created``), Unix epoch seconds
as numbers, and lists of any of these. Rejected with a reason: day/month orders that cannot be
told apart (``01/02/2020``), unparsable strings, dates before 1000 or after 2100, start after end.
Timestamps with an offset are converted to UTC before the date is taken.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from typing import Any

_YEAR = re.compile(r"^\d{4}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SLASHED = re.compile(r"^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}$")
_CTIME_FORMATS = ("%a %b %d %H:%M:%S %Y %z", "%a %b %d %H:%M:%S %z %Y", "%a %b %d %H:%M:%S %Y")
# A word followed by a comma (RFC 2822's ``Thu, 24 Sep ...``) can never match a ctime format: each
# starts with ``%a`` (letters) and then whitespace. Such strings skip the three ``strptime`` tries,
# which failing cost more than the rest of the date's parsing (a third of the forum dump's mapping
# time under cProfile, issue 20); the result is the same, as the tries could only fail.
_WORD_COMMA = re.compile(r"^[^\W\d_]+,")


class DateError(ValueError):
    """A date that cannot be normalized; the message says why."""


def _to_date(moment: dt.datetime) -> dt.date:
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.date()


def _check_range(day: dt.date, original: Any) -> dt.date:
    if not 1000 <= day.year <= 2100:
        raise DateError(f"{original!r}: year {day.year} is outside 1000-2100")
    return day


def parse_date(value: Any) -> dt.date:
    """One unambiguous date from a string or number; raises ``DateError``."""
    if isinstance(value, dt.datetime):
        return _check_range(_to_date(value), value)
    if isinstance(value, dt.date):
        return _check_range(value, value)
    if isinstance(value, bool) or value is None:
        raise DateError(f"{value!r} is not a date")
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value  # epoch milliseconds
        return _check_range(dt.datetime.fromtimestamp(seconds, dt.UTC).date(), value)
    if not isinstance(value, str):
        raise DateError(f"{value!r} ({type(value).__name__}) is not a date")
    text = value.strip()
    if not text:
        raise DateError("empty date")
    if _ISO_DATE.match(text):
        try:
            return _check_range(dt.date.fromisoformat(text), value)
        except ValueError as err:
            raise DateError(f"{value!r} is not a calendar date") from err
    if _SLASHED.match(text):
        raise DateError(f"{value!r} is ambiguous (day/month order unknown); give ISO YYYY-MM-DD")
    try:
        return _check_range(_to_date(dt.datetime.fromisoformat(text.replace("Z", "+00:00"))), value)
    except ValueError:
        pass
    for fmt in () if _WORD_COMMA.match(text) else _CTIME_FORMATS:
        try:
            return _check_range(_to_date(dt.datetime.strptime(text, fmt)), value)
        except ValueError:
            continue
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is not None:
        return _check_range(_to_date(parsed), value)
    raise DateError(f"{value!r} is not a recognized date format")


def normalize_date(value: Any) -> str:
    """``YYYY-MM-DD`` for one date; for a list, the earliest date."""
    if isinstance(value, list | tuple):
        if not value:
            raise DateError("empty list of dates")
        return min(parse_date(v) for v in value).isoformat()
    return parse_date(value).isoformat()


def normalize_created(value: Any) -> str:
    """``"YYYY-MM-DD, YYYY-MM-DD"`` from a range string, a single date, a year or a list of dates."""
    if isinstance(value, list | tuple):
        if not value:
            raise DateError("empty list of dates")
        days = [parse_date(v) for v in value]
        start, end = min(days), max(days)
    elif isinstance(value, str) and _YEAR.match(value.strip()):
        year = int(value.strip())
        start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    elif isinstance(value, str) and "," in value and not re.search(r"[A-Za-z]", value):
        parts = [p.strip() for p in value.split(",")]
        if len(parts) != 2:
            raise DateError(f"{value!r} is not a 'start, end' range")
        start, end = parse_date(parts[0]), parse_date(parts[1])
    else:
        start = end = parse_date(value)
    if start > end:
        raise DateError(f"{value!r}: start {start} is after end {end}")
    return f"{start.isoformat()}, {end.isoformat()}"
