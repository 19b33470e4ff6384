import pytest

from nordpipe.dates import DateError, normalize_created, normalize_date


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-09-24", "2020-09-24"),
        ("2020-09-24T20:08:09Z", "2020-09-24"),
        ("2020-09-24T23:30:00-02:00", "2020-09-25"),  # converted to UTC first
        ("2020-09-24 20:08:09", "2020-09-24"),
        ("Thu, 24 Sep 2020 20:08:09 +0000", "2020-09-24"),
        ("Thu Sep 24 20:08:09 2020 +0000", "2020-09-24"),
        (["2021-03-01T10:00:00Z", "2020-09-24T20:08:09Z"], "2020-09-24"),
        (1600978089, "2020-09-24"),
    ],
)
def test_normalize_date_accepts_unambiguous_forms(value, expected):
    assert normalize_date(value) == expected


@pytest.mark.parametrize("value", ["01/02/2020", "24.09.20", "yesterday", "", "2020-02-30", None, True, "0999-01-01", []])
def test_normalize_date_rejects_ambiguous_or_invalid(value):
    with pytest.raises(DateError):
        normalize_date(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-01-01, 2021-06-30", "2020-01-01, 2021-06-30"),
        ("2019", "2019-01-01, 2019-12-31"),
        ("2020-09-24T20:08:09Z", "2020-09-24, 2020-09-24"),
        (["2022-01-05", "2020-03-01", "2021-01-01"], "2020-03-01, 2022-01-05"),
        ("Thu Sep 24 20:08:09 2020 +0000", "2020-09-24, 2020-09-24"),
    ],
)
def test_normalize_created(value, expected):
    assert normalize_created(value) == expected


def test_created_range_must_be_ordered():
    with pytest.raises(DateError, match="after"):
        normalize_created("2021-01-01, 2020-01-01")


def test_dates_with_a_word_and_comma_skip_the_ctime_formats_without_changing_the_result():
    """RFC 2822 strings skip the ctime ``strptime`` tries (issue 20): those tries can only fail on them."""
    import datetime as dt
    import email.utils

    from nordpipe.dates import _CTIME_FORMATS, parse_date

    texts = [email.utils.format_datetime(dt.datetime(2001 + i % 90, 1 + i % 12, 1 + i % 28, i % 24, 7, 9,
                                                     tzinfo=dt.timezone(dt.timedelta(hours=i % 27 - 13))))
             for i in range(200)]
    texts += ["Thursday, 24 Sep 2020 20:08:09 +0000", "Thu, 24 Sep 2020 23:30:00 -0200"]
    for text in texts:
        for fmt in _CTIME_FORMATS:
            with pytest.raises(ValueError):
                dt.datetime.strptime(text, fmt)
        expected = email.utils.parsedate_to_datetime(text).astimezone(dt.UTC).date()
        assert parse_date(text) == expected, text
    assert parse_date("Thu, 24 Sep 2020 23:30:00 -0200") == dt.date(2020, 9, 25)
    assert parse_date("Thu Sep 24 20:08:09 2020 +0000") == dt.date(2020, 9, 24)  # ctime still tried
