"""`longwrite index DIR|FILE... [--name NAME]`, `--list`, `--rm NAME`: the user's indexes.

Thin over `sources.library`: the paths are checked, the index built or refreshed with a
progress bar on a terminal, and the summary printed (files read, unchanged, skipped and
why, passages stored). `--embed-server` also embeds the new passages now, so the first
dense query does not wait for them. An index that ends up holding nothing is an error
(the folder had nothing we can read), and a new one is not kept.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer

from longwrite.cli import options as opt
from longwrite.errors import LongwriteError, say

if TYPE_CHECKING:
    from pathlib import Path

    from longwrite.sources.build import Summary
    from longwrite.sources.library import IndexInfo


@opt.declared
def index_command(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Folders and files to index.", metavar="DIR|FILE...",
                       show_default=False),
    ] = None,
    *,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="The index's name (default: the first "
                     "path's name); `--source NAME` writes from it.", show_default=False),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the indexes: files, passages, folders.")
    ] = False,
    rm: Annotated[
        str | None,
        typer.Option("--rm", metavar="NAME", help="Remove the index NAME (not your files).",
                     show_default=False),
    ] = None,
    embed_server: opt.EmbedServer,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:  # fmt: skip
    """Index folders and files for `--source`."""
    from longwrite.sources import library

    asked = sum([bool(paths), list_, rm is not None])
    if asked != 1:
        raise LongwriteError("give folders or files to index, or --list, or --rm NAME (one)")
    if list_:
        _list(library.list_indexes(), as_json)
        return
    if rm is not None:
        library.remove_index(rm)
        say(f"longwrite: removed the index {rm!r} (your files are untouched)")
        return
    assert paths
    roots = library.resolve_paths(paths)
    index_name = library.check_name(name) if name else library.name_for(roots[0])
    new = not library.index_path(index_name).exists()
    summary = _build(roots, index_name)
    if summary.files == 0:
        if new:
            library.remove_index(index_name)
        why = "; ".join(f"{f}: {w}" for f, w in summary.skipped[:3]) or "no files"
        raise LongwriteError(f"nothing in {', '.join(paths)} could be read ({why})")
    embedded = _embed(index_name, embed_server) if embed_server else None
    if as_json:
        typer.echo(json.dumps({"name": index_name, **summary.to_json(), "embedded": embedded},
                              ensure_ascii=False))  # fmt: skip
        return
    for line in summary.lines(index_name):
        typer.echo(line)
    if embedded is not None:
        typer.echo(f"  embedded {embedded:,} new passage(s)")
    typer.echo(f"write from it: longwrite PROMPT --source {index_name}")


def _build(roots: list[Path], name: str) -> Summary:
    from longwrite.display.index_progress import IndexBar
    from longwrite.sources.library import build

    with IndexBar(name) as bar:
        return build(roots, name, bar)


def _embed(name: str, server: str) -> int:
    from longwrite.config.servers import use_one
    from longwrite.sources.embed import Embedder, fill_vectors
    from longwrite.sources.library import open_index

    embedder = Embedder(use_one(server) or server)
    try:
        with open_index(name) as index:
            return fill_vectors(index, embedder)
    finally:
        embedder.close()


def _list(infos: list[IndexInfo], as_json: bool) -> None:
    if as_json:
        for info in infos:
            typer.echo(json.dumps(info.to_json(), ensure_ascii=False))
        return
    if not infos:
        say("longwrite: no indexes yet (`longwrite index DIR` makes one)")
        return
    width = max(4, *(len(i.name) for i in infos))
    typer.echo(f"{'NAME':<{width}}  {'FILES':>7}  {'PASSAGES':>9}  {'UPDATED':<16}  FROM")
    for i in infos:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(i.updated)) if i.updated else "-"
        typer.echo(f"{i.name:<{width}}  {i.files:>7,}  {i.passages:>9,}  {when:<16}  "
                   f"{', '.join(i.roots)}")  # fmt: skip
