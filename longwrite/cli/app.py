"""The `longwrite` command line: thin wrappers over the library.

`longwrite PROMPT` is the main job; the names in `SUBCOMMANDS` are subcommands and any other
first word is a prompt (`main` routes it to the hidden `write` command; `longwrite -- serve`
writes about serving). Every fault a user can cause ends as one `longwrite: error: ...` line
on stderr and exit 2; Ctrl-C ends with 130 after what was generated has been kept.

Nothing heavy is imported here: torch and transformers load only once an engine is chosen,
so `--help` and `--dry-run` stay fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from longwrite import __version__
from longwrite.cli import options as opt
from longwrite.cli import terminate
from longwrite.cli.lazy import CONTEXT, LAZY, Lazy, LazyGroup
from longwrite.errors import EXIT_FAILED, EXIT_INTERRUPTED, LongwriteError, say

SUBCOMMANDS = (
    "write",
    "count",
    "serve",
    "batch",
    "batch-merge",
    "eval",
    "rl",
    "logs",
    "continue",
    "revise",
    "doctor",
    "export",
    "config",
    "completion",
    "index",
)

app = typer.Typer(
    cls=LazyGroup,
    name="longwrite",
    help=(
        "Ultra-long writing with LongWriter-Zero: the model thinks, plans, then writes a "
        "document of the length you ask for.\n\n"
        "Usage: longwrite PROMPT [OPTIONS] (or pipe the prompt into stdin). "
        "See `longwrite write --help` for the options."
    ),
    add_completion=False,
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"longwrite {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Ultra-long writing with LongWriter-Zero."""


def _read_prompt(prompt: str | None) -> str:
    if prompt is not None and prompt != "-":
        return prompt
    if sys.stdin is None or sys.stdin.isatty():
        raise LongwriteError("no prompt: give PROMPT, or pipe the prompt into stdin")
    try:
        return sys.stdin.read()
    except (OSError, UnicodeDecodeError) as e:
        raise LongwriteError(f"cannot read the prompt from stdin: {e}") from e


@app.command(
    "write",
    help="Write a document for PROMPT (the default command: `longwrite PROMPT` is the same).",
)
@opt.declared
def write_cmd(
    prompt: Annotated[
        str | None, typer.Argument(help="What to write; absent or '-': read stdin.")
    ] = None,
    *,
    words: opt.Words,
    best_of: opt.BestOf,
    max_rounds: opt.MaxRounds,
    range_model: opt.RangeModel,
    engine: opt.Engine,
    server: opt.Servers,
    sampling: opt.Sampling,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the document to FILE (atomically); "
                     "FILE.docx, .epub, .html, .odt or .pdf also keeps FILE.md beside it.",
                     rich_help_panel=opt.OUTPUT, metavar="FILE"),
    ] = None,
    export_format: Annotated[
        Literal["docx", "epub", "html", "odt", "pdf", "md"] | None,
        typer.Option("--format", help="Export -o FILE in this format once the document is "
                     "complete, keeping the Markdown beside it (see `longwrite export --help`).",
                     rich_help_panel=opt.OUTPUT, show_default=False),
    ] = None,
    thinking: opt.Thinking,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object instead of the document.",
                     rich_help_panel=opt.OUTPUT),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show what would be sent; load no model.",
                     rich_help_panel=opt.OUTPUT),
    ] = False,
    no_log: opt.NoLog,
    guards: opt.Guards,
    sections: opt.Sections,
    one_pass: opt.OnePass,
    plan_only: opt.PlanOnly,
    plan: opt.PlanFile,
    parallel: opt.Parallel,
    source: opt.Source,
    embed_server: opt.EmbedServer,
) -> None:  # fmt: skip
    from dataclasses import replace

    from longwrite.cli.write import run_write
    from longwrite.config.servers import use, use_one
    from longwrite.export.formats import export_target
    from longwrite.generate.job import WriteOptions
    from longwrite.runlog.store import log_wanted

    output, export_to = export_target(output, export_format)
    server, range_model = use(server or []), use_one(range_model)  # named ones: their URLs
    options = WriteOptions(
        prompt=_read_prompt(prompt),
        words=words,
        **sampling,
        output=output,
        thinking=thinking,
        as_json=as_json,
        dry_run=dry_run,
        best_of=best_of,
        max_rounds=max_rounds,
        range_model=range_model,
        log=log_wanted(no_log),
        **guards,
        sections=sections,
        one_pass=one_pass,
        plan_only=plan_only,
        plan_file=plan,
        parallel=parallel,
        sources=tuple(source or ()),
        embed_server=use_one(embed_server),
        engine=replace(engine, server=server[0] if server else None, servers=tuple(server[1:])),
    )
    code = run_write(options, export_to=export_to)
    if code:
        raise typer.Exit(code)


@app.command("count", help="Count words (as LongBench-Write does) in files; '-' reads stdin.")
def count_cmd(
    files: Annotated[list[str], typer.Argument(help="Files to count, or '-' for stdin.")],
    tokenizer: Annotated[
        str | None,
        typer.Option("--tokenizer", "-t", help="Also count tokens with this tokenizer."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file.")] = False,
) -> None:
    from longwrite.io.counting import count_tokens, count_words

    texts = [(name, _read_text(name)) for name in files]
    tok = None
    if tokenizer is not None:
        from longwrite.engines.transformers import load_tokenizer

        tok = load_tokenizer(tokenizer)
    total_words = total_tokens = 0
    for name, text in texts:
        n = count_words(text)
        t = count_tokens(text, tok) if tok is not None else None
        total_words += n
        total_tokens += t or 0
        if as_json:
            typer.echo(json.dumps({"file": name, "words": n, "tokens": t}, ensure_ascii=False))
        else:
            typer.echo(_count_line(n, t, name))
    if len(texts) > 1 and not as_json:
        typer.echo(_count_line(total_words, total_tokens if tok is not None else None, "total"))


def _count_line(words: int, tokens: int | None, label: str) -> str:
    tokens_part = f"  {tokens:>10,} tokens" if tokens is not None else ""
    return f"{words:>10,} words{tokens_part}  {label}"


def _read_text(name: str) -> str:
    from longwrite.io.files import read_user_text

    return sys.stdin.read() if name == "-" else read_user_text(name)


def _grounding(eval_app: typer.Typer) -> None:
    """`eval grounding` lives with the sources (`cli/grounding.py`), under `eval`."""
    if any(c.name == "grounding" for c in eval_app.registered_commands):
        return
    from longwrite.cli.grounding import grounding_command

    eval_app.command(
        "grounding",
        help="Citations of documents written from sources: the share of paragraphs citing a "
        "passage, citations of nothing, and with --judge whether each passage supports its "
        "sentence.",
    )(grounding_command)


# The subcommands, imported when used (`cli/lazy.py`): name, where, the root help's line.
LAZY.update(
    {
        "batch": Lazy(
            "longwrite.cli.batch:batch_command",
            "Run many prompts from a JSON Lines file; appends results, resumable.",
        ),
        "batch-merge": Lazy(
            "longwrite.cli.batch:merge_command",
            "Join the OUT files of a sharded batch (`batch merge`).",
        ),
        "serve": Lazy(
            "longwrite.serve:serve_command",
            "Start a vLLM server for LongWriter-Zero (arguments after -- go to vLLM).",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        ),
        "doctor": Lazy(
            "longwrite.cli.doctor:doctor_command",
            "Check this machine: versions against the tested matrix, GPUs, server.",
        ),
        "eval": Lazy(
            "longwrite.cli.eval:eval_app",
            "Score results: `eval length`, `quality` (LLM judge), `writingbench`, `arena`, "
            "`grounding`, `report`.",
            group=True,
            setup=_grounding,
        ),
        "index": Lazy(
            "longwrite.cli.index:index_command",
            "Index folders and files (.md .txt .pdf .docx .html .jsonl) for --source: only "
            "changed files are read again; `--list`, `--rm NAME`.",
        ),
        "rl": Lazy(
            "longwrite.cli.rl:rl_app",
            "The recipe: pretrain (stage 0), prepare, train (GRPO), plot, serve-rollouts.",
            group=True,
        ),
        "logs": Lazy(
            "longwrite.cli.logs:logs_app",
            "The run log: list runs, `logs show ID`, `path`, `rm ID`.",
            group=True,
        ),
        "continue": Lazy(
            "longwrite.cli.continue_:continue_command",
            "Carry a logged run on from exactly where it stopped (default: the newest).",
        ),
        "revise": Lazy(
            "longwrite.cli.revise:revise_command",
            "Write one section of a logged run again (an instruction, or a fresh sample); "
            "every version kept, `--undo` goes back.",
        ),
        "config": Lazy(
            "longwrite.cli.config:config_app",
            "Your defaults: show each setting and where it comes from; `config path`, "
            "`edit`, `set KEY VALUE`, `unset KEY`.",
            group=True,
        ),
        "completion": Lazy(
            "longwrite.cli.completion:completion_command",
            'Print the shell completion script: eval "$(longwrite completion bash)" in '
            "~/.bashrc (zsh, fish: README).",
        ),
        "export": Lazy(
            "longwrite.cli.export:export_command",
            "A run's document or a Markdown file as DOCX, EPUB, HTML (one file), ODT, PDF "
            "or Markdown, the format from -o's extension. Through pandoc; PDF is typeset by "
            "WeasyPrint. Both come with the extra: pip install 'longwrite\\[export]'.",
        ),
    }
)


def route(argv: list[str]) -> list[str]:
    """Send anything that is not a subcommand or a top-level flag to `write`."""
    if argv[:2] == ["batch", "merge"]:  # `batch` takes a file first: merge is its own command
        return ["batch-merge", *argv[2:]]
    if argv and (argv[0] in SUBCOMMANDS or argv[0] in ("-h", "--help", "--version")):
        return argv
    return ["write", *argv]


def _drop_stdout() -> None:
    """Point stdout at /dev/null: what its buffer still holds must not fail again at exit
    (Python would print an "Exception ignored" traceback)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def command() -> typer.main.TyperGroup:
    """The click command tree of the app, its help made readable (`cli/readable.py`)."""
    from longwrite.cli.readable import readable

    return readable(typer.main.get_command(app))


def _settings(root: typer.main.TyperGroup, args: list[str]) -> dict | None:
    """The config file's values as click's `default_map` for the command about to run (help
    notes where a default comes from); None when that command reads no key. A damaged file
    stops only the commands that read it: `config` and `doctor` are how it is mended."""
    from longwrite.cli import completion

    if completion.completing():  # the shell asks what may follow: answered, then exit
        completion.enable()
        completion.route_words(route)
        return None
    sub = root.get_command(None, args[0]) if args else None
    if sub is None:
        return None
    from longwrite.config.load import load
    from longwrite.config.precedence import default_map, from_env, keyed_params, note_sources

    if next(keyed_params(sub), None) is None:
        return None
    cfg = load()
    note_sources(sub, cfg.values, from_env())
    values = default_map(sub, cfg.values)
    return {args[0]: values} if values else None


def main(argv: list[str] | None = None) -> None:
    args = route(list(sys.argv[1:] if argv is None else argv))
    try:
        root = command()
        defaults = _settings(root, args)
        with terminate.as_interrupt(args[0] if args else None):
            code = root.main(
                args=args, prog_name="longwrite", standalone_mode=False, default_map=defaults
            )
    except typer.TyperException as e:  # bad usage: unknown option, invalid value, ...
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        say(f"longwrite: error: {message} (see longwrite --help)")
        code = getattr(e, "exit_code", 2)
    except LongwriteError as e:
        say(f"longwrite: error: {e}")
        code = e.exit_code
        if getattr(e, "stdout", False) is True:  # stdout refused the document (a full disk)
            _drop_stdout()
    except (KeyboardInterrupt, typer.Abort):
        say("interrupted")
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other Unix tools do.
        _drop_stdout()
        code = 1
    except OSError as e:  # an output the disk refused outside the document (`--json`, a table)
        say(f"longwrite: error: cannot write the output: {e.strerror or e}")
        _drop_stdout()
        code = EXIT_FAILED
    sys.exit(terminate.exit_code(code) if isinstance(code, int) else 0)
