"""What the full-text index sees of a text, and what a query asks it.

SQLite's FTS5 `unicode61` tokenizer splits on spaces and punctuation, which is right for
English and useless for Chinese: a run of hanzi has no spaces, so a whole sentence would be
one token and no query would ever match it. FTS5's `trigram` tokenizer solves that, but it
ranks English by letter triples (BM25 over "ing" and "the") and makes the index several
times larger. So the index keeps one `unicode61` table (with Porter stemming for English) and
we do Chinese the way Lucene's CJK analyzer does: every run of CJK characters is written
into the searched text as its overlapping bigrams ("城市热岛" -> "城市 市热 热岛"). A query
gets the same treatment, so "热岛效应" finds a passage about 城市热岛效应 by the bigrams they
share, with BM25 weighing each bigram by how rare it is. A one-character query term (a run of
one hanzi) matches the bigrams that start with it (an FTS5 prefix query).

The displayed text of a passage is kept apart; only this search text is indexed.
"""

from __future__ import annotations

import re

# CJK unified ideographs (and extension A), kana and hangul: scripts written without spaces.
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af]+")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
MAX_QUERY_TERMS = 64  # a section's notes can be long; the rarest terms do the work anyway

# Words too common to help BM25 find a passage (they would only slow the OR query down).
_STOPWORDS = """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how i
    if in into is it its itself just me more most my myself no nor not now of off on once
    only or other our ours ourselves out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under until
    up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves write writing written words word report essay article section
    chapter include including use using based one two three"""
STOPWORDS = frozenset(_STOPWORDS.split())


def bigrams(run: str) -> list[str]:
    """The overlapping pairs of a run of CJK characters (a lone character is itself).

    >>> bigrams("城市热岛")
    ['城市', '市热', '热岛']
    >>> bigrams("水")
    ['水']
    """
    if len(run) < 2:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def search_text(text: str) -> str:
    """`text` as the index reads it: CJK runs replaced by their bigrams, the rest as is.

    >>> search_text("Urban heat: 城市热岛效应 in 2020")
    'Urban heat:  城市 市热 热岛 岛效 效应  in 2020'
    """
    if not _CJK_RUN.search(text):
        return text
    return _CJK_RUN.sub(lambda m: " " + " ".join(bigrams(m.group(0))) + " ", text)


def query_terms(text: str) -> list[str]:
    """The distinct terms of a query in order: words (less stopwords and single letters) and
    the bigrams of CJK runs.

    >>> query_terms("Write about the urban heat island of 北京的热岛")
    ['urban', 'heat', 'island', '北京', '京的', '的热', '热岛']
    """
    terms: list[str] = []
    seen: set[str] = set()
    for piece in _CJK_RUN.split(text):
        for word in _WORD.findall(piece.lower()):
            if len(word) > 1 and word not in STOPWORDS and word not in seen:
                seen.add(word)
                terms.append(word)
    for run in _CJK_RUN.findall(text):
        for gram in bigrams(run):
            if gram not in seen:
                seen.add(gram)
                terms.append(gram)
    return terms[:MAX_QUERY_TERMS]


def match_expression(terms: list[str]) -> str:
    r"""An FTS5 MATCH expression: any of the terms (BM25 ranks by how many and how rare).
    Each term is a quoted string, so no user text is read as FTS5 syntax; a lone CJK
    character becomes a prefix query.

    >>> print(match_expression(['heat', 'say"x', '水']))
    "heat" OR "say""x" OR "水" *
    """
    parts = []
    for term in terms:
        quoted = '"' + term.replace('"', '""') + '"'
        parts.append(f"{quoted} *" if len(term) == 1 and _CJK_RUN.fullmatch(term) else quoted)
    return " OR ".join(parts)


def has_cjk(text: str) -> bool:
    return _CJK_RUN.search(text) is not None
