"""The run folder of `rl train`: its checkpoints, what a resumed run starts from, `final/`.

Kill safety is the point of this module. The HF Trainer writes a checkpoint's files in place,
`trainer_state.json` last, so a checkpoint counts as complete only if that file parses, names
the folder's own step and the weights are there. `--resume` takes the newest complete one and
renames any newer, half-written folder to `incomplete-checkpoint-N` (out of the Trainer's
sight, so its next save at that step starts clean); `metrics.jsonl` is cut back to the resumed
step, so every step appears once. `final/` is written beside the run and renamed into place.

The folder is checked before anything is written (`check_ours`): it must be new, empty, or
a run's (its `config.yaml` begins with `CONFIG_MARK`, or it holds a run's files). A folder
of the user's, with a `config.yaml` of their own (the recipe itself, say) or other files, is
refused in one line, before its `config.yaml` could be replaced.

Under `accelerate launch` every process runs this code: the main process alone changes the
folder (incomplete checkpoints set aside, `config.yaml`, `metrics.jsonl` taken and cut back)
while the others wait at a barrier; only then do they look for the checkpoint to resume, so
no process reads a folder that another is renaming.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from longwrite.io.jsonl import AppendLog
from longwrite.rl.config import ConfigError, RunConfig
from longwrite.rl.metrics import hold_metrics, trim_metrics

CHECKPOINT = re.compile(r"checkpoint-(\d+)")
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
           "pytorch_model.bin.index.json", "adapter_model.safetensors")  # fmt: skip
FINAL = "final"
CONFIG = "config.yaml"
CONFIG_MARK = "# longwrite rl: the resolved recipe of the run in this folder (written by the run)"
RUN_FILES = ("metrics.jsonl", FINAL, "tiny-model")  # what only a run puts in its folder


def checkpoint_step(path: Path) -> int | None:
    m = CHECKPOINT.fullmatch(path.name)
    return int(m[1]) if m else None


def is_complete_checkpoint(path: Path) -> bool:
    """Whether the Trainer finished writing `path` (its state, written last, names its step)."""
    from longwrite.io.records import LineError, decode_object

    step = checkpoint_step(path)
    try:
        state = decode_object((path / "trainer_state.json").read_bytes())
    except (OSError, LineError):  # not there, or half written: not complete
        return False
    if step is None or state.get("global_step") != step:
        return False
    deepspeed = any(p.is_dir() and p.name.startswith("global_step") for p in path.iterdir())
    return deepspeed or any((path / name).is_file() for name in WEIGHTS)


def find_checkpoints(run_dir: Path) -> list[Path]:
    """`checkpoint-N` folders of `run_dir`, newest (highest N) first."""
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0, reverse=True)


def resume_checkpoint(run_dir: Path, *, set_aside: bool = True) -> Path | None:
    """The newest complete checkpoint; newer incomplete ones are renamed out of the way."""
    for path in find_checkpoints(run_dir):
        if is_complete_checkpoint(path):
            return path
        if set_aside:
            aside = path.with_name(f"incomplete-{path.name}")
            if aside.exists():
                shutil.rmtree(aside)
            path.rename(aside)
    return None


def check_ours(cfg: RunConfig) -> None:
    """The run folder is new, empty or a run's; a folder of the user's is refused before
    anything is written in it (its `config.yaml` would be replaced)."""
    run = cfg.run_dir
    if not run.exists():
        return
    if not run.is_dir():
        raise ConfigError(f"{cfg.source}: output_dir {run} is a file, not a folder")
    names = sorted(p.name for p in run.iterdir())
    if not names:
        return
    config = run / CONFIG
    try:
        with config.open(encoding="utf-8", errors="replace") as f:
            marked = f.readline().rstrip("\n") == CONFIG_MARK
    except OSError:
        marked = False
    run_made = [n for n in names if n in RUN_FILES or CHECKPOINT.fullmatch(n)
                or n.startswith("incomplete-checkpoint-")]  # fmt: skip
    if config.exists() and not marked and "metrics.jsonl" not in names:  # (an older run's has)
        raise ConfigError(
            f"{cfg.source}: output_dir {run} holds a {CONFIG} that no longwrite run wrote "
            "(a run keeps its resolved recipe there): choose another output_dir"
        )
    if not marked and not run_made:
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise ConfigError(
            f"{cfg.source}: output_dir {run} already holds files of its own ({shown}): "
            "choose a new or empty folder"
        )


def check_unused(cfg: RunConfig) -> None:
    """A run without `--resume` must not land on an earlier run's checkpoints or model, nor
    in a folder of the user's."""
    check_ours(cfg)
    run = cfg.run_dir
    checkpoints = find_checkpoints(run)
    if checkpoints or (run / FINAL).exists():
        what = checkpoints[0].name if checkpoints else FINAL
        raise ConfigError(
            f"{cfg.source}: output_dir {run} already holds a run ({what}): pass --resume "
            "to continue it, or choose another output_dir"
        )


def prepare_run_dir(
    cfg: RunConfig, resume: bool, state: Any
) -> tuple[Path | None, AppendLog | None]:
    """The run folder, ready to train in: (the checkpoint to resume from or None, and on the
    main process the metrics log it holds, which the caller closes).

    The main process alone changes the folder while the others wait; then the others find
    the same checkpoint, which is now the newest folder.
    """
    run = cfg.run_dir
    checkpoint, metrics = None, None
    if state.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        metrics = hold_metrics(run)  # first: a second run on this folder is refused here
        try:
            checkpoint = resume_checkpoint(run) if resume else None
            import yaml

            from longwrite.io.files import atomic_write_text

            recipe = yaml.safe_dump(cfg.to_json(), sort_keys=False)
            atomic_write_text(run / CONFIG, f"{CONFIG_MARK}\n{recipe}")
            step = checkpoint_step(checkpoint) if checkpoint else None
            trim_metrics(metrics.path, step or 0)
        except BaseException:
            metrics.close()
            raise
    state.wait_for_everyone()
    if not state.is_main_process and resume:
        checkpoint = resume_checkpoint(run, set_aside=False)
    return checkpoint, metrics


def tiny_model(run_dir: Path) -> Path:
    """`model: tiny`: the tiny random model, built into the run folder on first use."""
    from longwrite.tiny import build_tiny_model

    folder = run_dir / "tiny-model"
    needed = ("config.json", "model.safetensors", "tokenizer.json")
    if not all((folder / name).is_file() for name in needed):
        build_tiny_model(folder)
    return folder


def save_final(trainer: Any, run_dir: Path) -> Path:
    """Model and tokenizer into RUN/final, renamed into place once complete."""
    final, partial, old = run_dir / FINAL, run_dir / f"{FINAL}.partial", run_dir / f"{FINAL}.old"
    if trainer.is_world_process_zero() and partial.exists():
        shutil.rmtree(partial)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(partial))  # every process: ZeRO-3 gathers the shards
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        tokenizer = trainer.processing_class
        if tokenizer is not None and not (partial / "tokenizer_config.json").exists():
            tokenizer.save_pretrained(str(partial))
        if final.exists():
            final.rename(old)
        partial.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return final
