# cython: language_level=3, boundscheck=False, wraparound=False
"""The number-run scan of ``nordpipe.pii.engine`` as a C loop (compiled by ``setup.py``).

``number_runs`` finds what ``engine.NUMBER_RUN`` finds and measures each run's digits in
the same pass: one pass over the characters instead of a regular-expression scan plus a
``findall`` per run. ``engine.number_runs_regex`` is the pure-Python definition used when this
module is not built; the tests compare the two on generated and random texts.
"""


cdef inline bint _in_run(Py_UCS4 c):
    # NUMBER_RUN's character class [\dA-Y\-.+()/:]
    return (u'A' <= c <= u'Y') or c == u'-' or c == u'.' or c == u'+' or c == u'(' or c == u')' \
        or c == u'/' or c == u':' or c.isdecimal()


def number_runs(str text, Py_ssize_t min_length):
    """``(start, end, digits, longest_digit_group, has_dot)`` of every NUMBER_RUN match of
    ``text`` at least ``min_length`` characters long."""
    cdef Py_ssize_t n = len(text)
    cdef Py_ssize_t i = 0, j, start, digits, group, longest
    cdef Py_UCS4 c
    cdef bint dot
    found = []
    while i < n:
        c = text[i]
        if not (c.isdecimal() or ((c == u'+' or c == u'(') and i + 1 < n and text[i + 1].isdecimal())):
            i += 1
            continue
        start = i
        i += 1
        while True:
            while i < n and _in_run(text[i]):
                i += 1
            # another group after one space: " 12", " +45", " (0"
            if i + 1 < n and text[i] == u' ':
                j = i + 1
                if text[j] == u'+' or text[j] == u'(':
                    j += 1
                if j < n and text[j].isdecimal():
                    i = j + 1
                    continue
            break
        if i - start < min_length:
            continue
        digits = group = longest = 0
        dot = False
        for j in range(start, i):
            c = text[j]
            if c.isdecimal():
                digits += 1
                group += 1
                if group > longest:
                    longest = group
            else:
                group = 0
                if c == u'.':
                    dot = True
        found.append((start, i, digits, longest, dot))
    return found


cdef inline bint _is_word(Py_UCS4 c):
    # the regular expressions' \w
    return c.isalnum() or c == u'_'


def iban_starts(str text):
    """Positions where an IBAN can start: two ASCII capitals and two digits, not preceded by a
    word character (what ``recognizers.iban_starts_regex`` finds)."""
    cdef Py_ssize_t n = len(text)
    cdef Py_ssize_t i
    cdef Py_UCS4 a, b, c, d
    found = []
    for i in range(n - 3):
        a = text[i]
        if not (u'A' <= a <= u'Z'):
            continue
        b = text[i + 1]
        c = text[i + 2]
        d = text[i + 3]
        if u'A' <= b <= u'Z' and c.isdecimal() and d.isdecimal() and (i == 0 or not _is_word(text[i - 1])):
            found.append(i)
    return found
