"""`longwrite rl ...`: the training commands, thin wrappers over `longwrite.rl`.

`rl_app` is mounted by `longwrite.cli.app` as the `rl` group. Faults a user can cause are raised
as `LongwriteError` and become one `longwrite: error: ...` line and exit 2 there. Under
`accelerate launch` every process runs the command; only the main one (RANK 0) prints.

`serve-rollouts` starts TRL's own vLLM server for `rollout.engine: vllm-server` (the trainer
sends it prompts and pushes new weights to it after every step); `serve_command` only builds
the command line, so `--dry-run` can show it and the tests can check it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from longwrite.cli.terminate import resumable
from longwrite.errors import LongwriteError, say

rl_app = typer.Typer(
    help="Train a LongWriter-Zero style writer: pretrain (stage 0), prepare, train (GRPO), plot.",
    no_args_is_help=True,
    add_completion=False,
)


@rl_app.callback()
def _rl() -> None:
    """Train a LongWriter-Zero style writer: pretrain (stage 0), prepare, train (GRPO), plot."""


def _main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _say(message: str) -> None:
    if _main_process():
        say(message)


@rl_app.command("train", help="Run a GRPO recipe (YAML); checkpoints, metrics and RUN/final.")
def train_cmd(
    config: Annotated[Path, typer.Argument(help="The recipe, e.g. rl/tiny-cpu.yaml.")],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key, e.g. --set train.max_steps=20 (repeatable)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last complete checkpoint.")
    ] = False,
) -> None:
    from longwrite.rl.config import load_config

    cfg = load_config(config, overrides or [])
    from longwrite.rl.train import run_train

    result = run_train(cfg, resume=resume)
    _say(
        f"done: step {result.steps} in {result.seconds:.0f} s; metrics in "
        f"{result.run_dir / 'metrics.jsonl'}; the model: longwrite --model {result.final_dir}"
    )
    if _main_process():
        typer.echo(str(result.final_dir))


@rl_app.command("pretrain", help="Continual pretraining on long-form text (stage 0, YAML).")
def pretrain_cmd(
    config: Annotated[Path, typer.Argument(help="The recipe, e.g. rl/pretrain/tiny-cpu.yaml.")],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a key (repeatable).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last complete checkpoint.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what the run will cost; train nothing.")
    ] = False,
) -> None:
    from longwrite.rl.pretrain_config import load_pretrain_config

    cfg = load_pretrain_config(config, overrides or [])
    from longwrite.rl.pretrain import run_pretrain

    result = run_pretrain(cfg, resume=resume, dry_run=dry_run)
    if result.final_dir is None:
        return
    _say(f"done: step {result.steps} in {result.seconds:.0f} s; as `model:` of rl train: "
         f"{result.final_dir}")  # fmt: skip
    if _main_process():
        typer.echo(str(result.final_dir))


@rl_app.command("prepare", help="Apply the think template and give each prompt a word range.")
def prepare_cmd(
    prompts: Annotated[
        Path, typer.Argument(help="JSON Lines with `prompt`, or a dataset saved with save_to_disk.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="JSON Lines to write (appended: resumable).")
    ],
    range_model: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible URL of an LLM that predicts the range of prompts "
                     "that state no length (else they are dropped)."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Range-model requests in flight.")] = 8,
) -> None:  # fmt: skip
    from longwrite.io.files import check_apart
    from longwrite.rl.data import prepare

    if not prompts.exists():
        raise LongwriteError(f"cannot read {prompts}: no such file")
    check_apart([output], [prompts])
    complete, close = _range_model(range_model) if range_model else (None, None)
    progress = _Counter()
    try:
        with resumable(output):
            report = prepare(prompts, output, complete=complete, workers=workers, on_row=progress)
    finally:
        progress.stop()
        if close is not None:
            close()
    _say(report.line(output))


class _Counter:
    """A live count of handled prompts on a terminal's stderr; silent otherwise."""

    def __init__(self) -> None:
        self._status = None
        if sys.stderr.isatty():
            from rich.console import Console

            self._status = Console(stderr=True).status("preparing prompts")
            self._status.start()

    def __call__(self, done: int) -> None:
        if self._status is not None:
            self._status.update(f"prepared {done} prompts")

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()


def _range_model(url: str):  # noqa: ANN202 - (complete, close)
    from longwrite.engines.base import ENV_API_KEY, Sampling
    from longwrite.engines.openai import OpenAIEngine

    engine = OpenAIEngine(url, api_key=os.environ.get(ENV_API_KEY))
    sampling = Sampling(max_tokens=400, temperature=0.2, top_p=1.0, stop=())

    def complete(text: str) -> str:
        return "".join(chunk.text for chunk in engine.stream(text, sampling))

    return complete, engine.close


@rl_app.command("plot", help="Draw the curves of RUN/metrics.jsonl into PNG files.")
def plot_cmd(
    run: Annotated[Path, typer.Argument(help="The run folder (the recipe's output_dir).")],
    out: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for the PNGs [RUN/plots].")
    ] = None,
    window: Annotated[int, typer.Option(min=1, help="Steps in the moving average.")] = 5,
) -> None:
    from longwrite.rl.plots import plot_run

    for path in plot_run(run, out, window=window):
        typer.echo(str(path))


def _trl_executable() -> str:
    beside = Path(sys.executable).parent / "trl"
    return str(beside) if beside.exists() else (shutil.which("trl") or "trl")


def serve_command(
    model: str,
    *,
    server: str | None,
    tp: int = 1,
    dp: int = 1,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    host: str | None = None,
    trl: str = "trl",
) -> list[str]:
    """The `trl vllm-serve` command line for the rollout server of a recipe.

    The port comes from `rollout.vllm_server` (default 8000); the host is 0.0.0.0 so that
    trainers on other nodes can reach it.

    >>> serve_command("Qwen/Qwen2.5-7B", server="http://10.0.0.2:8001", tp=2)[:6]
    ['trl', 'vllm-serve', '--model', 'Qwen/Qwen2.5-7B', '--tensor_parallel_size', '2']
    """
    port = (
        urlsplit(server if "://" in server else f"http://{server}").port if server else None
    ) or 8000
    command = [
        trl, "vllm-serve", "--model", model,
        "--tensor_parallel_size", str(tp), "--data_parallel_size", str(dp),
        "--host", host or "0.0.0.0", "--port", str(port),
        "--gpu_memory_utilization", str(gpu_memory_utilization),
    ]  # fmt: skip
    if max_model_len is not None:
        command += ["--max_model_len", str(max_model_len)]
    return command


@rl_app.command("serve-rollouts", help="Start TRL's vLLM rollout server for a recipe.")
def serve_rollouts_cmd(
    config: Annotated[Path, typer.Argument(help="The recipe (rollout.engine: vllm-server).")],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a key (repeatable).")
    ] = None,
    tp: Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel GPUs per replica.")] = 1,
    dp: Annotated[int, typer.Option("--dp", min=1, help="Data-parallel replicas.")] = 1,
    gpu_memory_utilization: Annotated[
        float, typer.Option(help="Share of each GPU's memory for vLLM.")
    ] = 0.9,
    host: Annotated[str | None, typer.Option(help="Address to listen on [0.0.0.0].")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the command; start nothing.")
    ] = False,
) -> None:
    from longwrite.rl.config import TINY, load_config

    cfg = load_config(config, overrides or [], for_training=False)
    model = cfg.model
    if model == TINY:
        model = str(cfg.run_dir / "tiny-model")
        if not dry_run and not Path(model).is_dir():
            raise LongwriteError(f"{model} does not exist yet: `longwrite rl train` builds it")
    command = serve_command(
        model,
        server=cfg.rollout.vllm_server,
        tp=tp,
        dp=dp,
        gpu_memory_utilization=gpu_memory_utilization,
        max_model_len=cfg.rollout.vllm_max_model_length,
        host=host,
        trl="trl" if dry_run else _trl_executable(),
    )
    if dry_run:
        typer.echo(shlex.join(command))
        return
    try:
        code = subprocess.call(command)
    except FileNotFoundError:
        raise LongwriteError("`trl` is not installed: pip install 'longwrite[rl]'") from None
    if code:
        raise typer.Exit(code)
