"""`longwrite eval length|quality|writingbench|arena|report`: thin commands over
`longwrite.evaluate`.

Each command reads a results file, scores it with the evaluation package and prints a
table (or `--json`); faults a user can fix are one line and exit 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from longwrite.cli import options as opt
from longwrite.cli.declare import declared, option
from longwrite.cli.terminate import resumable
from longwrite.defaults import JUDGE_CONTEXT as DEFAULT_CONTEXT
from longwrite.defaults import WORST_SHOWN as DEFAULT_WORST
from longwrite.errors import LongwriteError
from longwrite.io.files import check_apart, check_writable

eval_app = typer.Typer(
    help="Score generated documents the way the benchmarks do.",
    no_args_is_help=True,
    add_completion=False,
)


# The callback keeps `eval` a group of subcommands even while it has a single command.
@eval_app.callback()
def _eval() -> None:
    """Score generated documents the way the benchmarks do."""


def _judging(asks: int) -> Any:
    """The progress of the judge's verdicts on stderr (a bar on a terminal)."""
    from longwrite.display.batch_progress import BatchProgress

    return BatchProgress(asks, label="judge", rate=False, failed_word="unscored")


# The judge's URL, model and requests at once are settings, declared with the others.
JudgeUrl, JudgeModel, Concurrency = opt.JudgeUrl, opt.JudgeModel, opt.JudgeConcurrency
Chat = Annotated[
    bool,
    typer.Option(
        "--chat/--completions",
        help="Ask over /v1/chat/completions (the judge's chat template) or raw completions.",
    ),
]
Scores = option(
    Path | None, None, "--output", "-o", metavar="FILE",
    help="Verdicts, appended as they come (default: beside RESULTS).",
)  # fmt: skip
Retries = option(int, 2, metavar="N", min=0, help="Retries of a bad reply or failed request.")
Timeout = option(float, 300.0, metavar="SECONDS", help="Seconds to wait for a judge reply.")
Context = option(
    int, DEFAULT_CONTEXT, metavar="TOKENS", min=1,
    help="The judge's context in tokens when its server does not report one (longer answers "
    "are cut to fit).",
)  # fmt: skip
AsJson = option(bool, False, "--json", help="Print one JSON object instead of tables.")


def _judge_url(url: str | None, flag: str) -> str:
    """The judge's URL (a named server's), required from the flag, the environment or the
    config file."""
    from longwrite.config.servers import use_one

    found = use_one(url)
    if found is None:
        raise LongwriteError(
            f"{flag} URL is required: give it, or set judge.url in the config file "
            "(`longwrite config set judge.url URL`) or LONGWRITE_JUDGE_URL"
        )
    return found


@eval_app.command("length", help="LongBench-Write length score S_l of a JSON Lines results file.")
def length_cmd(
    results: Annotated[
        Path,
        typer.Argument(
            help="JSON Lines: `length` (the required length), `answer`, optional `type`, `id`.",
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw required vs produced length into FILE.png."),
    ] = None,
    worst: Annotated[
        int, typer.Option("--worst", min=0, help="How many lowest-scoring items to list.")
    ] = DEFAULT_WORST,
) -> None:
    if plot is not None:
        check_writable(plot)
    from longwrite.evaluate.length import load_results, print_report, summarize
    from longwrite.evaluate.plots import plot_lengths

    items = load_results(results)
    report = summarize(items, worst=worst)
    if plot is not None:
        title = f"LongBench-Write length: S_l = {report.length_score:.1f} (n = {report.n})"
        plot_lengths(items, plot, title=title)
    if as_json:
        typer.echo(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print_report(report)


# `eval quality` and `eval report`: thin wrappers over quality.py, summary.py and report.py.
@eval_app.command(
    "quality",
    help="LongBench-Write quality score S_q from an LLM judge (and the overall score).",
)
@declared
def quality_cmd(
    results: Annotated[
        Path,
        typer.Argument(help="JSON Lines: `prompt`, `answer`; optional `type`, `id`, `length`."),
    ],
    *,
    judge: JudgeUrl,
    judge_model: JudgeModel,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Scores file, appended as verdicts come (default: RESULTS.quality.jsonl).",
        ),
    ] = None,
    concurrency: Concurrency,
    retries: Retries,
    timeout: Timeout,
    judge_context: Context,
    chat: Chat = False,
    as_json: AsJson,
) -> None:
    from longwrite.evaluate.quality import (
        default_scores_path,
        judge_file,
        load_items,
        server_judge,
    )
    from longwrite.evaluate.summary import print_quality, summarize_quality

    scores_path = output or default_scores_path(results)
    check_writable(scores_path)
    check_apart([scores_path], [results])
    items = load_items(results)
    judge = _judge_url(judge, "--judge")
    complete, engine = server_judge(judge, judge_model, timeout, judge_context, chat=chat)
    try:
        with resumable(scores_path):
            verdicts = judge_file(
                items,
                complete,
                scores_path,
                concurrency=concurrency,
                retries=retries,
                judge_model=engine.model,
                context_tokens=complete.context,
                progress=_judging,
            )
    finally:
        engine.close()
    report = summarize_quality(items, verdicts)
    if as_json:
        typer.echo(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print_quality(report)
    if report.unscored:
        errors = [v.error for v in verdicts.values() if v.scores is None and v.error]
        _unscored(len(report.unscored), len(items), errors, scores_path)


@eval_app.command("report", help="A Markdown report with tables and PNG plots beside it.")
def report_cmd(
    results: Annotated[Path, typer.Argument(help="The JSON Lines results file.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The Markdown file to write (atomically).")
    ],
    quality: Annotated[
        Path | None,
        typer.Option(help="Scores of `eval quality` (default: RESULTS.quality.jsonl if any)."),
    ] = None,
    worst: Annotated[
        int, typer.Option("--worst", min=0, help="How many worst cases to list.")
    ] = DEFAULT_WORST,
    writingbench: Annotated[
        Path | None,
        typer.Option(help="`eval writingbench`'s summary (default: RESULTS.writingbench.json)."),
    ] = None,
    arena: Annotated[
        Path | None, typer.Option(help="`eval arena`'s summary (default: RESULTS.arena.json).")
    ] = None,
) -> None:
    from longwrite.evaluate.report import write_report

    written = write_report(
        results, output, quality=quality, worst=worst, writingbench=writingbench, arena=arena
    )
    for path in written:
        typer.echo(str(path))


# `eval writingbench` and `eval arena`: the paper's own benchmarks, judged over a chat
# endpoint by default (the critic's and the judge's own chat templates).


def _summary_path(scores: Path) -> Path:
    """`X.writingbench.jsonl` -> `X.writingbench.json`: what `eval report` shows."""
    return scores.with_suffix(".json")


def _unscored(count: int, total: int, errors: list[str], scores: Path) -> None:
    """The one line that says why the command ends with 1: the judge left some unscored."""
    from longwrite.errors import EXIT_FAILED, one_line, say

    last = f"; the last: {one_line(errors[-1], 200)}" if errors else ""
    say(
        f"longwrite: error: {count} of {total} unscored: the judge gave no usable reply{last}. "
        f"{scores} keeps every verdict: the same command asks again about these"
    )
    raise typer.Exit(EXIT_FAILED)


def _finish(
    summary: dict,
    scores: Path,
    as_json: bool,
    show: Callable[[dict], None],
    verdicts: dict,
    total: int,
) -> None:
    from longwrite.io.files import atomic_write_text

    atomic_write_text(_summary_path(scores), json.dumps(summary, ensure_ascii=False, indent=1))
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
    else:
        show(summary)
    if summary["unscored"]:
        unscored = set(summary["unscored"])  # (arena: battles, each two verdicts)
        ours = [v for k, v in verdicts.items() if k in unscored or k.rsplit("|", 1)[0] in unscored]
        errors = [str(v["error"]) for v in ours if v.get("error")]
        _unscored(len(unscored), total, errors, scores)


@eval_app.command("writingbench", help="WritingBench: a critic scores each criterion 1-10.")
@declared
def writingbench_cmd(
    results: Annotated[Path, typer.Argument(help="JSON Lines: `index`, `response`/`answer`.")],
    queries: Annotated[Path, typer.Option(help="WritingBench's queries (JSON Lines).",
                                          metavar="FILE")],
    *,
    critic: JudgeUrl,
    critic_model: JudgeModel,
    chat: Chat = True,
    output: Scores,
    concurrency: Concurrency,
    retries: Retries,
    timeout: Timeout,
    judge_context: Context,
    as_json: AsJson,
) -> None:  # fmt: skip
    from longwrite.evaluate import writingbench as wb
    from longwrite.scoring.judge import endpoint

    scores = output or wb.default_scores_path(results)
    check_writable(scores)
    check_apart([scores, _summary_path(scores)], [results, queries])
    qs, answers = wb.load_queries(queries), wb.load_answers(results)
    tasks = wb.tasks_of(qs, answers)
    if not tasks:
        raise LongwriteError(f"no answer in {results} has the index of a query in {queries}")
    critic = _judge_url(critic, "--critic")
    send = endpoint(critic, critic_model, chat=chat, timeout=timeout,
                    max_tokens=wb.CRITIC_MAX_TOKENS, default_context=judge_context)  # fmt: skip
    try:
        with resumable(scores):
            verdicts = wb.judge_all(tasks, send, scores, judge_model=send.model,
                                    concurrency=concurrency, retries=retries,
                                    context_tokens=send.context, progress=_judging)  # fmt: skip
    finally:
        send.close()
    summary = wb.summarize(qs, answers, verdicts)
    _finish(summary, scores, as_json, wb.print_summary, verdicts, len(tasks))


@eval_app.command("arena", help="Arena-Write: pairwise battles against baselines, Elo ratings.")
@declared
def arena_cmd(
    results: Annotated[list[Path], typer.Argument(help="Candidates' answers by `idx`/`id`.")],
    baselines: Annotated[Path, typer.Option(help="Arena-Write's prompts and baseline answers.",
                                            metavar="FILE")],
    *,
    judge: JudgeUrl,
    judge_model: JudgeModel,
    chat: Chat = True,
    output: Scores,
    rounds: Annotated[int, typer.Option(min=0, help="Bootstrap rounds for the 95% CI.")] = 1000,
    seed: Annotated[int, typer.Option(help="The bootstrap's seed.")] = 0,
    concurrency: Concurrency,
    retries: Retries,
    timeout: Timeout,
    judge_context: Context,
    as_json: AsJson,
) -> None:  # fmt: skip
    from longwrite.evaluate import arena
    from longwrite.scoring.judge import endpoint

    scores = output or arena.default_scores_path(results[0])
    check_writable(scores)
    check_apart([scores, _summary_path(scores)], [*results, baselines])
    prompts = arena.load_prompts(baselines)
    names = arena.candidate_names(results)
    taken = {b for p in prompts for b in p.baselines} & set(names)
    if taken:
        raise LongwriteError(
            f"a results file is named like a baseline ({', '.join(taken)}): rename it"
        )
    candidates = {n: arena.load_candidate(p) for n, p in zip(names, results, strict=True)}
    pairs = arena.pairs_of(prompts, candidates)
    if not pairs:
        raise LongwriteError(f"no answer in the results has the idx of a prompt in {baselines}")
    judge = _judge_url(judge, "--judge")
    send = endpoint(judge, judge_model, chat=chat, timeout=timeout,
                    max_tokens=arena.JUDGE_MAX_TOKENS, default_context=judge_context)  # fmt: skip
    try:
        with resumable(scores):
            verdicts = arena.judge_pairs(pairs, send, scores, judge_model=send.model,
                                         concurrency=concurrency, retries=retries,
                                         context_tokens=send.context,
                                         progress=_judging)  # fmt: skip
    finally:
        send.close()
    summary = arena.summarize(pairs, verdicts, names, rounds=rounds, seed=seed)
    _finish(summary, scores, as_json, arena.print_summary, verdicts, len(pairs) // 2)
