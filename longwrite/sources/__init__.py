"""Writing from the user's own documents: index them, retrieve passages, cite them.

`extract` (text out of each file type) -> `chunk` (passages of a few hundred tokens) ->
`store` and `build` (one SQLite FTS5 index per name, refreshed incrementally) -> `library`
(where indexes live, `--source DIR|NAME`) -> `retrieve` (BM25, optionally fused with an
embedding server's ranking, `embed`) -> `cite` (numbers in the prompt, `[n]` checked and
listed as References). `generate.grounded` puts them into a run.

Nothing here is imported by `longwrite --help`; pypdf and python-docx only when a PDF or a
DOCX is read.
"""
