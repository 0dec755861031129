"""`longwrite eval grounding RESULTS [--judge URL]`: the citations of documents written from
sources, thin over `evaluate.grounding`.

Without `--judge` it only reads (no network): the share of paragraphs that cite a passage,
and citations that point at nothing. `--judge` is an option of this command alone, not the
`judge.url` setting the other evals read, so a judge in the config file does not turn a
quick count into hundreds of requests; the judge's model, concurrency, retries and context
are the other evals' options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from longwrite.cli.completion import server_names
from longwrite.cli.declare import declared, option
from longwrite.cli.eval import AsJson, Chat, Concurrency, Context, JudgeModel, Retries, Timeout
from longwrite.defaults import GROUNDING_CLAIMS
from longwrite.errors import EXIT_FAILED, say

Judge = option(
    str | None, None, "--judge", metavar="URL|NAME", autocompletion=server_names,
    help="Also ask this judge (OpenAI-compatible URL, or a named server) whether each cited "
    "passage supports its sentence.",
)  # fmt: skip


def _judging(asks: int) -> object:
    """The judge's progress on stderr (a bar on a terminal), as the other evals show it."""
    from longwrite.display.batch_progress import BatchProgress

    return BatchProgress(asks, label="judge", rate=False, failed_word="unscored")


@declared
def grounding_command(
    results: Annotated[
        Path,
        typer.Argument(help="JSON Lines of `batch` or `--json`: `answer` and `sources`."),
    ],
    *,
    judge: Judge,
    judge_model: JudgeModel,
    chat: Chat = True,
    claims: Annotated[
        int,
        typer.Option("--claims", min=1, metavar="N", help="Most sentence-passage pairs judged "
                     "per document (spread through it)."),
    ] = GROUNDING_CLAIMS,
    concurrency: Concurrency,
    retries: Retries,
    timeout: Timeout,
    judge_context: Context,
    as_json: AsJson,
) -> None:  # fmt: skip
    from longwrite.evaluate import grounding

    docs = grounding.load_documents(results, claims)
    if judge is not None:
        from longwrite.config.servers import use_one
        from longwrite.scoring.judge import endpoint

        send = endpoint(use_one(judge) or judge, judge_model, chat=chat, timeout=timeout,
                        max_tokens=grounding.JUDGE_MAX_TOKENS,
                        default_context=judge_context)  # fmt: skip
        try:
            grounding.judge(docs, send, concurrency=concurrency, retries=retries,
                            context_tokens=send.context, progress=_judging)  # fmt: skip
        finally:
            send.close()
    summary = grounding.summarize(docs)
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
    else:
        grounding.print_summary(summary)
    if summary["unscored"]:
        say(f"longwrite: error: {summary['unscored']} pair(s) unscored: the judge gave no usable "
            "reply; run again to ask again")  # fmt: skip
        raise typer.Exit(EXIT_FAILED)
