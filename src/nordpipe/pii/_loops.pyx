# cython: language_level=3, boundscheck=False, wraparound=False
"""C loops of the PII scanner (compiled by ``setup.py``).

Each function here does in one pass over the characters what a regular expression or a
Python loop elsewhere defines; that definition is the pure-Python fallback used when this
module is not built, and the tests compare the two on generated and random texts:

- ``number_runs``: ``engine.NUMBER_RUN`` plus each run's digit counts (``engine.number_runs_regex``);
- ``iban_starts``: ``recognizers.iban_starts_regex``;
- ``decimal_digits``: ``recognizers.decimal_digits_regex``;
- ``iban_mod97``: ``recognizers.iban_mod97_py``;
- ``NameChains``: the chains of capitalised words ``names._CHAIN_RE`` matches
  (``names.name_chains_regex``);
- ``word_before``: the word ``names.NameFinder`` looks at for context (``names.word_before_py``);
- ``sentence_start``: where a candidate's sentence starts (``engine.sentence_start_regex``).

Characters are read straight from the string's buffer; the character classes of the regular
expressions (``\\d``, ``\\w``, ``\\s``) come from a table for ASCII, filled at import from
Python's own ``str`` methods, and from CPython's Unicode database for the rest.
"""

from cpython.unicode cimport PyUnicode_DATA, PyUnicode_KIND, PyUnicode_READ

cdef enum:
    DECIMAL = 1  # \d
    ALNUM = 2  # \w without "_"
    SPACE = 4  # \s

cdef unsigned char _ASCII[128]
for _code in range(128):
    _ASCII[_code] = ((DECIMAL if chr(_code).isdecimal() else 0) | (ALNUM if chr(_code).isalnum() else 0)
                     | (SPACE if chr(_code).isspace() else 0))


cdef inline bint _decimal(Py_UCS4 c) noexcept:
    if c < 128:
        return _ASCII[c] & DECIMAL
    return c.isdecimal()


cdef inline bint _alnum(Py_UCS4 c) noexcept:
    if c < 128:
        return _ASCII[c] & ALNUM
    return c.isalnum()


cdef inline bint _space(Py_UCS4 c) noexcept:
    if c < 128:
        return _ASCII[c] & SPACE
    return c.isspace()


cdef inline bint _word(Py_UCS4 c) noexcept:
    # \w
    return c == u'_' or _alnum(c)


cdef inline bint _letter(Py_UCS4 c) noexcept:
    # [^\W\d_]
    return _alnum(c) and not _decimal(c)


cdef inline bint _in_run(Py_UCS4 c) noexcept:
    # NUMBER_RUN's character class [\dA-Y\-.+()/:]
    return (u'A' <= c <= u'Y') or c == u'-' or c == u'.' or c == u'+' or c == u'(' or c == u')' \
        or c == u'/' or c == u':' or _decimal(c)


def number_runs(str text, Py_ssize_t min_length):
    """``(start, end, digits, longest_digit_group, dots, starts)`` of every NUMBER_RUN
    match of ``text`` at least ``min_length`` characters long (see ``engine.number_runs_regex``)."""
    cdef Py_ssize_t n = len(text)
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_ssize_t i = 0, j, start, digits, group, longest, dots
    cdef Py_UCS4 c
    found = []
    while i < n:
        c = PyUnicode_READ(kind, data, i)
        if not (_decimal(c) or ((c == u'+' or c == u'(') and i + 1 < n and _decimal(PyUnicode_READ(kind, data, i + 1)))):
            i += 1
            continue
        start = i
        i += 1
        while True:
            while i < n and _in_run(PyUnicode_READ(kind, data, i)):
                i += 1
            # another group after one space: " 12", " +45", " (0"
            if i + 1 < n and PyUnicode_READ(kind, data, i) == u' ':
                j = i + 1
                c = PyUnicode_READ(kind, data, j)
                if c == u'+' or c == u'(':
                    j += 1
                if j < n and _decimal(PyUnicode_READ(kind, data, j)):
                    i = j + 1
                    continue
            break
        if i - start < min_length:
            continue
        digits = group = longest = dots = 0
        starts = [start]
        for j in range(start, i):
            c = PyUnicode_READ(kind, data, j)
            if _decimal(c):
                digits += 1
                group += 1
                if group > longest:
                    longest = group
            else:
                group = 0
                if c == u'.':
                    dots += 1
                elif (c == u' ' or c == u'(' or c == u')' or c == u':') and j + 1 < i:
                    starts.append(j + 1)
        found.append((start, i, digits, longest, dots, tuple(starts)))
    return found


def iban_starts(str text):
    """Positions where an IBAN can start: two ASCII capitals and two digits, not preceded by a
    word character (what ``recognizers.iban_starts_regex`` finds)."""
    cdef Py_ssize_t n = len(text)
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_ssize_t i
    cdef Py_UCS4 a
    found = []
    for i in range(n - 3):
        a = PyUnicode_READ(kind, data, i)
        if not (u'A' <= a <= u'Z'):
            continue
        a = PyUnicode_READ(kind, data, i + 1)
        if not (u'A' <= a <= u'Z'):
            continue
        if (_decimal(PyUnicode_READ(kind, data, i + 2)) and _decimal(PyUnicode_READ(kind, data, i + 3))
                and (i == 0 or not _word(PyUnicode_READ(kind, data, i - 1)))):
            found.append(i)
    return found


def decimal_digits(str value):
    """The decimal digits of ``value`` (``recognizers.decimal_digits_regex``)."""
    cdef Py_ssize_t i, n = len(value)
    cdef int kind = PyUnicode_KIND(value)
    cdef void* data = PyUnicode_DATA(value)
    cdef Py_UCS4 c
    for i in range(n):
        if not _decimal(PyUnicode_READ(kind, data, i)):
            break
    else:
        return value
    return "".join([c for c in value if _decimal(c)])


def iban_mod97(str number):
    """``int(number[4:] + number[:4]`` with letters as 10..35 ``) % 97`` for an IBAN of ASCII
    capitals and digits; -1 for any other character (``recognizers.iban_mod97_py``)."""
    cdef Py_ssize_t n = len(number), k
    cdef int kind = PyUnicode_KIND(number)
    cdef void* data = PyUnicode_DATA(number)
    cdef Py_UCS4 c
    cdef long remainder = 0
    if n < 4:
        return -1
    for k in range(n):
        c = PyUnicode_READ(kind, data, (k + 4) % n)
        if u'0' <= c <= u'9':
            remainder = (remainder * 10 + (<long>c - 48)) % 97
        elif u'A' <= c <= u'Z':
            remainder = (remainder * 100 + (<long>c - 55)) % 97
        else:
            return -1
    return remainder


cdef inline bint _starts_with(int kind, void* data, Py_ssize_t n, Py_ssize_t r, str word) noexcept:
    # text.startswith(word, r) without a method call
    cdef Py_ssize_t m = len(word), t
    cdef int word_kind = PyUnicode_KIND(word)
    cdef void* word_data = PyUnicode_DATA(word)
    if r + m > n:
        return False
    for t in range(m):
        if PyUnicode_READ(kind, data, r + t) != PyUnicode_READ(word_kind, word_data, t):
            return False
    return True


cdef class NameChains:
    """Chains of capitalised words: the spans ``names._CHAIN_RE.finditer`` matches.

    A token is a capital (one of ``upper``) not after a word character, ``@`` or ``/``, then
    either a dot before whitespace and another capital (an initial, ``H. C.``) or, not after a
    dot, letters with inner ``-``/``'`` parts and an optional closing apostrophe, not followed
    by a word character or ``@`` (backtracking to a shorter end as the expression does).
    Tokens chain over one space, or over a space, a particle (one of ``particles``) and
    whitespace ending in a space.
    """

    cdef unsigned char upper_table[0x250]
    cdef tuple particles

    def __init__(self, str upper, tuple particles):
        cdef Py_ssize_t i
        for i in range(0x250):
            self.upper_table[i] = 0
        for ch in upper:
            if ord(ch) >= 0x250:
                raise ValueError(f"capital {ch!r} outside the table")
            self.upper_table[ord(ch)] = 1
        self.particles = tuple(sorted(particles, key=len, reverse=True))

    cdef inline bint _upper(self, Py_UCS4 c) noexcept:
        return c < 0x250 and self.upper_table[<Py_ssize_t>c] != 0

    cdef inline bint _end_ok(self, int kind, void* data, Py_ssize_t n, Py_ssize_t k) noexcept:
        # (?![\w@])
        cdef Py_UCS4 c
        if k >= n:
            return True
        c = PyUnicode_READ(kind, data, k)
        return not (_word(c) or c == u'@')

    cdef Py_ssize_t _token(self, int kind, void* data, Py_ssize_t n, Py_ssize_t p) noexcept:
        """End of the token starting at ``p``; -1 when there is none, -2 when it has too many
        parts for this loop."""
        cdef Py_UCS4 c
        cdef Py_ssize_t i, j, k, count
        cdef Py_ssize_t ends[64]
        if p >= n or not self._upper(PyUnicode_READ(kind, data, p)):
            return -1
        if p > 0:
            c = PyUnicode_READ(kind, data, p - 1)
            if _word(c) or c == u'@' or c == u'/':
                return -1
        # an initial before whitespace and a capital: "H. C."
        if (p + 3 < n and PyUnicode_READ(kind, data, p + 1) == u'.' and _space(PyUnicode_READ(kind, data, p + 2))
                and self._upper(PyUnicode_READ(kind, data, p + 3))):
            return p + 2
        if p > 0 and PyUnicode_READ(kind, data, p - 1) == u'.':
            return -1
        i = p + 1
        while i < n and _letter(PyUnicode_READ(kind, data, i)):
            i += 1
        count = 0
        ends[count] = i
        count += 1
        while i + 1 < n:
            c = PyUnicode_READ(kind, data, i)
            if not ((c == u'-' or c == u"'" or c == u'\u2019') and _letter(PyUnicode_READ(kind, data, i + 1))):
                break
            j = i + 1
            while j < n and _letter(PyUnicode_READ(kind, data, j)):
                j += 1
            i = j
            if count == 64:
                return -2  # absurdly many parts: the caller falls back to the expression
            ends[count] = i
            count += 1
        for k in range(count - 1, -1, -1):
            i = ends[k]
            if i < n:
                c = PyUnicode_READ(kind, data, i)
                if (c == u"'" or c == u'\u2019') and self._end_ok(kind, data, n, i + 1):
                    return i + 1
            if self._end_ok(kind, data, n, i):
                return i
        return -1

    cdef Py_ssize_t _next_link(self, int kind, void* data, Py_ssize_t n, Py_ssize_t q) noexcept:
        """End of the next token of a chain whose last token ends at ``q``; -1 when there is
        none, -2 when it has too many parts for this loop."""
        cdef Py_ssize_t r, s, e, end
        cdef str particle
        if q >= n or PyUnicode_READ(kind, data, q) != u' ':
            return -1
        r = q + 1
        while r < n and _space(PyUnicode_READ(kind, data, r)):
            r += 1
        if r < n and PyUnicode_READ(kind, data, r) >= u'a':  # particles are lower case
            for particle in self.particles:
                if _starts_with(kind, data, n, r, particle):
                    s = r + len(particle)
                    e = s
                    while e < n and _space(PyUnicode_READ(kind, data, e)):
                        e += 1
                    if e > s and PyUnicode_READ(kind, data, e - 1) == u' ':
                        end = self._token(kind, data, n, e)
                        if end != -1:
                            return end
        return self._token(kind, data, n, q + 1)

    def find(self, str text):
        """``[(start, end), ...]`` of the chains, or None when a token has too many parts for
        this loop (the caller then uses the expression)."""
        cdef Py_ssize_t n = len(text)
        cdef int kind = PyUnicode_KIND(text)
        cdef void* data = PyUnicode_DATA(text)
        cdef Py_ssize_t p = 0, end, nxt
        found = []
        while p < n:
            if not self._upper(PyUnicode_READ(kind, data, p)):
                p += 1
                continue
            end = self._token(kind, data, n, p)
            if end == -2:
                return None
            if end < 0:
                p += 1
                continue
            while True:
                nxt = self._next_link(kind, data, n, end)
                if nxt == -2:
                    return None
                if nxt < 0:
                    break
                end = nxt
            found.append((p, end))
            p = end
        return found


def word_before(str text, Py_ssize_t start, Py_ssize_t dotted_max):
    """The word right before ``start`` that may give a name context, as
    ``(lower-case word, after_dot, comma_in_gap)``, or None (see ``names.word_before_py``)."""
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_ssize_t i = start - 1, j, word_end
    cdef Py_UCS4 c
    cdef bint comma = False
    while i >= 0:
        c = PyUnicode_READ(kind, data, i)
        if c == u' ' or c == u'\t' or c == u'\u00a0':
            i -= 1
        elif c == u',':
            comma = True
            i -= 1
        else:
            break
    if i < 0:
        return None
    c = PyUnicode_READ(kind, data, i)
    if c == u'.':
        j = i - 1
        while j >= 0:
            c = PyUnicode_READ(kind, data, j)
            if not (_alnum(c) or c == u'-' or c == u'_'):
                break
            if i - j >= dotted_max:
                return None
            j -= 1
        return (text[j + 1 : i + 1].lower(), True, comma)
    if not (_alnum(c) or c == u'-' or c == u'_'):
        return None
    word_end = i + 1
    while i >= 0 and word_end - i < 40:
        c = PyUnicode_READ(kind, data, i)
        if not (_alnum(c) or c == u'-' or c == u'_'):
            break
        i -= 1
    return (text[i + 1 : word_end].lower(), False, comma)


def sentence_start(str text, Py_ssize_t lo, Py_ssize_t hi):
    """Where the sentence holding ``hi`` starts within ``text[lo:hi]``: the last line break or
    capital (A-Z, ÆØÅÄÖÜ) after ``.``/``!``/``?`` and whitespace there; ``lo`` when there is
    none (``engine.sentence_start_regex``)."""
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_ssize_t k, j
    cdef Py_UCS4 c
    k = hi - 1
    while k >= lo:
        c = PyUnicode_READ(kind, data, k)
        if c == u'\n':
            return k
        if (u'A' <= c <= u'Z') or c == u'Æ' or c == u'Ø' or c == u'Å' or c == u'Ä' or c == u'Ö' or c == u'Ü':
            j = k - 1
            while j >= lo and _space(PyUnicode_READ(kind, data, j)):
                j -= 1
            if j < k - 1 and j >= lo:
                c = PyUnicode_READ(kind, data, j)
                if c == u'.' or c == u'!' or c == u'?':
                    return k
        k -= 1
    return lo
