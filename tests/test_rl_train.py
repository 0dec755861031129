"""`longwrite rl train` end to end on the tiny model: learning, checkpoints, kill and resume,
metrics, the final model, plots."""

import json
import os
import subprocess
import sys
import time

import pytest
from test_rl_config import GOOD, kill_at_checkpoint, run_cli
from typer.testing import CliRunner

from longwrite.cli.rl import rl_app
from longwrite.errors import LongwriteError
from longwrite.rl.metrics import progress_line, read_metrics, trim_metrics
from longwrite.rl.run_dir import is_complete_checkpoint, resume_checkpoint

TINY = "rl/tiny-cpu.yaml"


def fake_checkpoint(run, step, *, state=True, weights=True, state_step=None):
    folder = run / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if weights:
        (folder / "model.safetensors").write_bytes(b"w")
    if state:
        step_in_file = step if state_step is None else state_step
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step_in_file}))
    return folder


def test_checkpoint_completeness(tmp_path):
    assert is_complete_checkpoint(fake_checkpoint(tmp_path, 1))
    assert not is_complete_checkpoint(fake_checkpoint(tmp_path, 2, state=False))
    assert not is_complete_checkpoint(fake_checkpoint(tmp_path, 3, weights=False))
    assert not is_complete_checkpoint(fake_checkpoint(tmp_path, 4, state_step=3))
    torn = fake_checkpoint(tmp_path, 5)
    (torn / "trainer_state.json").write_text('{"global_step": 5, "log_hi')
    assert not is_complete_checkpoint(torn)
    deepspeed = fake_checkpoint(tmp_path, 6, weights=False)
    (deepspeed / "global_step6").mkdir()
    assert is_complete_checkpoint(deepspeed)


def test_resume_takes_the_newest_complete_checkpoint(tmp_path):
    fake_checkpoint(tmp_path, 5)
    fake_checkpoint(tmp_path, 10)
    fake_checkpoint(tmp_path, 15, state=False)  # killed while saving
    fake_checkpoint(tmp_path, 100, weights=False)  # numerically newest, also incomplete
    (tmp_path / "checkpoint-x").mkdir()  # not a checkpoint name: ignored
    assert resume_checkpoint(tmp_path, set_aside=False) == tmp_path / "checkpoint-10"
    assert (tmp_path / "checkpoint-15").exists()  # set_aside=False leaves them
    assert resume_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "checkpoint-10",
        "checkpoint-5",
        "checkpoint-x",
        "incomplete-checkpoint-100",
        "incomplete-checkpoint-15",
    ]
    assert resume_checkpoint(tmp_path / "nothing-here") is None


def test_metrics_are_trimmed_back_to_the_resumed_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "length": s / 10}) + "\n" for s in range(1, 8)))
    with open(path, "a") as f:
        f.write('{"step": 8, "len')  # torn by a kill
    assert [r["step"] for r in read_metrics(path)] == list(range(1, 8))
    trim_metrics(path, 5)
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4, 5]
    assert path.read_text().endswith("\n")


def test_a_second_run_on_the_same_folder_is_refused_before_it_touches_it(tmp_path, monkeypatch):
    import trl

    from longwrite.rl.config import load_config
    from longwrite.rl.metrics import hold_metrics
    from longwrite.rl.train import run_train

    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "Write a 20-word slogan."}) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(GOOD.format(data=data, out=tmp_path / "run"))
    cfg = load_config(recipe, processes=1)
    run = tmp_path / "run"
    fake_checkpoint(run, 2)
    fake_checkpoint(run, 4, state=False)  # the other run is saving it right now
    monkeypatch.setattr(trl, "GRPOTrainer", lambda **kw: pytest.fail("a model was loaded"))
    other = hold_metrics(run)  # the other `rl train --resume`, still running
    try:
        with pytest.raises(LongwriteError, match=r"another longwrite run is writing .*metrics"):
            run_train(cfg, resume=True)
    finally:
        other.close()
    assert (run / "checkpoint-4").is_dir() and not (run / "config.yaml").exists()


class _State:
    is_world_process_zero = True
    global_step = 3
    max_steps = 10


def test_each_logged_step_is_one_whole_line_and_one_progress_line(tmp_path):
    import io

    from longwrite.rl.metrics import hold_metrics, run_callbacks

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "len')  # a kill
    trim_metrics(run / "metrics.jsonl", 2)
    log, stream = hold_metrics(run), io.StringIO()
    try:
        (callback,) = run_callbacks(log, stream)
        callback.on_train_begin(None, _State(), None)
        logs = {"reward": 0.5, "rewards/length/mean": 0.25, "answer_words": 41.0, "loss": 0.0}
        callback.on_log(None, _State(), None, logs=logs)
        callback.on_log(None, _State(), None, logs={"train_runtime": 9.0})  # not a step: skipped
    finally:
        log.close()
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert records[-1]["length"] == 0.25 and records[-1]["trl"] == logs
    assert stream.getvalue() == "step 3/10 · length 0.25 · words 41\n"  # no ETA: no step done


def test_progress_line():
    record = {"length": 0.512, "format": 0.0, "answer_words": 812.4, "step_time": 95.0}
    assert progress_line(12, 150, record, 3725.0) == (
        "step 12/150 · length 0.51 · format 0.00 · words 812 · 95.00 s/step · ETA 1:02:05"
    )
    assert progress_line(1, 2, {}, None) == "step 1/2"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny-cpu recipe, trained once through the real CLI (a fresh interpreter)."""
    run = tmp_path_factory.mktemp("rl") / "tiny-cpu"
    start = time.monotonic()
    code, out, err = run_cli(["rl", "train", TINY, "--set", f"output_dir={run}"])
    assert code == 0, err[-3000:]
    return run, out, err, time.monotonic() - start


@pytest.mark.slow
def test_tiny_cpu_learns_the_length(tiny_run):
    run, out, err, seconds = tiny_run
    assert out.splitlines()[0] == str(run / "final")  # then the HEAVY marker of the harness
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 41))
    for key in ("reward", "length", "format", "answer_words", "clip_ratio", "entropy",
                "step_time", "completion_tokens", "loss", "trl"):  # fmt: skip
        assert key in records[0], key
    length = [r["length"] for r in records]
    first, last = sum(length[:5]) / 5, sum(length[-5:]) / 5
    print(f"tiny-cpu: length reward first 5 = {first:.3f}, last 5 = {last:.3f}, {seconds:.0f} s")
    assert last >= first + 0.15, (first, last)
    assert sum(r["answer_words"] for r in records[-5:]) < sum(
        r["answer_words"] for r in records[:5]
    )
    assert "starting: 14 prompts (2 dropped without a length)" in err
    assert "step 40/40 · length" in err and err.rstrip().splitlines()[-1].startswith(
        "done: step 40"
    )
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-30", "checkpoint-40"]


@pytest.mark.slow
def test_the_final_model_is_served_by_longwrite(tiny_run):
    run = tiny_run[0]
    final = run / "final"
    assert (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file()
    proc = subprocess.run(
        [sys.executable, "-m", "longwrite", "Write a 20-word slogan for a bakery.",
         "--model", str(final), "--max-tokens", "12", "--seed", "0", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["tokens"] > 0


@pytest.mark.slow
def test_plot_writes_one_png_per_curve(tiny_run, tmp_path):
    run = tiny_run[0]
    result = CliRunner().invoke(rl_app, ["plot", str(run), "-o", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    names = sorted(os.path.basename(line) for line in result.output.split())
    assert names == sorted(
        f"{k}.png"
        for k in (
            "reward",
            "length",
            "format",
            "answer_words",
            "clip_ratio",
            "entropy",
            "step_time",
        )
    )
    for name in names:
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(LongwriteError, match="no logged steps yet"):
        from longwrite.rl.plots import plot_run

        (tmp_path / "empty-run").mkdir()
        plot_run(tmp_path / "empty-run")


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_complete_checkpoint(tmp_path):
    run = tmp_path / "run"
    args = ["rl", "train", TINY, "--set", f"output_dir={run}", "--set", "train.max_steps=8",
            "--set", "train.save_steps=3"]  # fmt: skip
    kill_at_checkpoint(args, run / "checkpoint-3")
    assert not (run / "final").exists()
    # As if the kill had hit the next save halfway: a checkpoint folder without its state.
    (run / "checkpoint-6").mkdir(exist_ok=True)
    (run / "checkpoint-6" / "model.safetensors").write_bytes(b"half")

    code, _, err = run_cli(args)  # without --resume: refused, nothing touched
    assert code == 2 and "pass --resume" in err
    code, out, err = run_cli([*args, "--resume"])
    assert code == 0, err[-3000:]
    assert "resuming from" in err and f"{run}/checkpoint-" in err
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == list(range(1, 9))
    assert (run / "incomplete-checkpoint-6" / "model.safetensors").read_bytes() == b"half"
    # The step-6 save of the resumed run started clean; save_total_limit 2 keeps 6 and 8.
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-6", "checkpoint-8"]
    assert all(is_complete_checkpoint(p) for p in run.glob("checkpoint-*"))
    assert (run / "final" / "model.safetensors").is_file()


def test_gpu_peak_memory_is_read_only_where_cuda_is(monkeypatch):
    import types

    from longwrite.rl.metrics import gpu_peak_gib

    cuda = types.SimpleNamespace(is_available=lambda: True,
                                 max_memory_allocated=lambda: 3 * 2**30 + 2**29)  # fmt: skip
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert gpu_peak_gib() == 3.5
    cuda.is_available = lambda: False
    assert gpu_peak_gib() is None
