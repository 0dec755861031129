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
    context_settings={"help_option_names": ["-h", "--help"]},
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


def _register_subapps() -> None:
    from longwrite.cli.batch import batch_command, merge_command
    from longwrite.cli.completion import completion_command
    from longwrite.cli.config import config_app
    from longwrite.cli.continue_ import continue_command
    from longwrite.cli.doctor import doctor_command
    from longwrite.cli.eval import eval_app
    from longwrite.cli.export import export_command
    from longwrite.cli.grounding import grounding_command
    from longwrite.cli.index import index_command
    from longwrite.cli.logs import logs_app
    from longwrite.cli.revise import revise_command
    from longwrite.cli.rl import rl_app
    from longwrite.serve import serve_command

    app.command(
        "batch",
        help="Run many prompts from a JSON Lines file; appends results, resumable.",
    )(batch_command)
    app.command("batch-merge", help="Join the OUT files of a sharded batch (`batch merge`).")(
        merge_command
    )
    app.command(
        "serve",
        help="Start a vLLM server for LongWriter-Zero (arguments after -- go to vLLM).",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(serve_command)
    app.command(
        "doctor", help="Check this machine: versions against the tested matrix, GPUs, server."
    )(doctor_command)
    eval_app.command(
        "grounding",
        help="Citations of documents written from sources: the share of paragraphs citing a "
        "passage, citations of nothing, and with --judge whether each passage supports its "
        "sentence.",
    )(grounding_command)
    app.add_typer(
        eval_app,
        name="eval",
        help="Score results: `eval length`, `quality` (LLM judge), `writingbench`, `arena`, "
        "`grounding`, `report`.",
    )
    app.command(
        "index",
        help="Index folders and files (.md .txt .pdf .docx .html .jsonl) for --source: only "
        "changed files are read again; `--list`, `--rm NAME`.",
    )(index_command)
    app.add_typer(
        rl_app,
        name="rl",
        help="The recipe: pretrain (stage 0), prepare, train (GRPO), plot, serve-rollouts.",
    )
    app.add_typer(
        logs_app, name="logs", help="The run log: list runs, `logs show ID`, `path`, `rm ID`."
    )
    app.command(
        "continue",
        help="Carry a logged run on from exactly where it stopped (default: the newest).",
    )(continue_command)
    app.command(
        "revise",
        help="Write one section of a logged run again (an instruction, or a fresh sample); "
        "every version kept, `--undo` goes back.",
    )(revise_command)
    app.add_typer(
        config_app,
        name="config",
        help="Your defaults: show each setting and where it comes from; `config path`, "
        "`edit`, `set KEY VALUE`, `unset KEY`.",
    )
    app.command(
        "completion",
        help='Print the shell completion script: eval "$(longwrite completion bash)" in '
        "~/.bashrc (zsh, fish: README).",
    )(completion_command)
    app.command(
        "export",
        help="A run's document or a Markdown file as DOCX, EPUB, HTML (one file), ODT, PDF "
        "or Markdown, the format from -o's extension. Through pandoc; PDF is typeset by "
        "WeasyPrint. Both come with the extra: pip install 'longwrite\\[export]'.",
    )(export_command)


_register_subapps()


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
    sub = root.commands.get(args[0]) if args else None
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
