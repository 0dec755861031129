"""`longwrite rl` recipes: YAML -> dataclasses -> GRPOConfig, and every mistake as one line."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from longwrite.cli.rl import rl_app, serve_command
from longwrite.rl.config import (
    ConfigError,
    RunConfig,
    check_batch,
    known_keys,
    load_config,
    parse_set,
    suggest,
)

REPO = Path(__file__).resolve().parents[1]

# `longwrite` with the rl group mounted, exactly as the lead's cli.py will mount it; the
# atexit line tells whether a heavy library was imported (it must not be, for config errors).
MOUNTED = """
import atexit, sys
from longwrite.cli import app as cli
from longwrite.cli.rl import rl_app
cli.app.registered_commands = [c for c in cli.app.registered_commands if c.name != "rl"]
cli.app.registered_groups = [g for g in cli.app.registered_groups if g.name != "rl"]
cli.app.add_typer(rl_app, name="rl")
HEAVY = ("torch", "transformers", "trl")
atexit.register(lambda: print("HEAVY:" + ",".join(m for m in HEAVY if m in sys.modules)))
cli.main(sys.argv[1:])
"""


def run_cli(args, cwd=REPO, timeout=600, **kwargs):
    """`longwrite ARGS` in a fresh interpreter: (exit code, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-c", MOUNTED, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
    return proc.returncode, proc.stdout, proc.stderr


def kill_at_checkpoint(args, checkpoint: Path, wait_s: float = 300) -> None:
    """Start `longwrite ARGS`, wait until `checkpoint` is complete, then kill -9 it."""
    import signal
    import time

    from longwrite.rl.run_dir import is_complete_checkpoint

    proc = subprocess.Popen([sys.executable, "-c", MOUNTED, *map(str, args)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + wait_s
        while not is_complete_checkpoint(checkpoint):
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, f"no checkpoint within {wait_s:.0f} s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


GOOD = """\
model: tiny
data: {data}
output_dir: {out}
rollout:
  num_generations: 4
  max_completion_length: 16
train:
  max_steps: 2
  per_device_train_batch_size: 4
  learning_rate: 1e-3
"""


@pytest.fixture
def recipe(tmp_path):
    """write(text) -> path of a recipe whose data file exists."""
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "Write a 20-word slogan."}) + "\n")

    def write(text=GOOD, name="recipe.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).format(data=data, out=tmp_path / "run"))
        return path

    return write


def test_defaults_are_the_papers(recipe, tmp_path):
    cfg = load_config(recipe("model: tiny\ndata: {data}\n"), processes=1)
    assert cfg.rollout.num_generations == 32
    assert cfg.rollout.temperature == 0.8 and cfg.rollout.top_p == 1.0
    assert cfg.rollout.max_completion_length == 14_000
    assert cfg.train.epsilon == 0.2 and cfg.train.beta == 0.0
    assert cfg.rewards.enabled() == ["length", "format"]  # writing needs a model
    assert cfg.output_dir == str(Path("runs") / "recipe")


def test_a_float_may_be_written_like_1e_3(recipe):
    # PyYAML reads `1e-3` as a string; a float field takes it, an int field does not.
    assert load_config(recipe(), processes=1).train.learning_rate == 0.001
    with pytest.raises(ConfigError, match=r"train.max_steps must be an integer, not '1e3'"):
        load_config(recipe(), ["train.max_steps='1e3'"], processes=1)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rollout.temprature=0.5", "'rollout.temprature' (did you mean 'rollout.temperature'?)"),
        ("train.temperature=0.5", "key 'train.temperature' (did you mean 'rollout.temperature'?)"),
        ("modle=x", "unknown key 'modle' (did you mean 'model'?)"),
        ("rewards.lenght={}", "unknown key 'rewards.lenght' (did you mean 'rewards.length'?)"),
        ("train.max_steps=ten", "train.max_steps must be an integer, not 'ten'"),
        ("train.max_steps=2.5", "train.max_steps must be an integer, not 2.5"),
        ("train.gradient_checkpointing=maybe", "must be true or false, not 'maybe'"),
        ("rollout.engine=sglang", "rollout.engine must be one of transformers, vllm-colocate"),
        ("rollout.engine=vllm-server", "rollout.vllm_server is required"),
        ("rollout.num_generations=1", "at least 2"),
        ("rewards.writing={}", "needs exactly one of model"),
        ("rewards=", "switches every reward off"),
        ("data=nowhere.jsonl", "data: no such file or folder: nowhere.jsonl"),
        ("model=./no/such/model", "model: no such model folder: ./no/such/model"),
        ("rewards.writing.model=/no/rm", "rewards.writing.model: no such model folder: /no/rm"),
    ],
)  # fmt: skip
def test_mistakes_name_the_file_and_the_key(recipe, override, message):
    path = recipe()
    with pytest.raises(ConfigError) as e:
        load_config(path, [override], processes=1)
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_hub_id_is_not_checked_on_disk(recipe):
    assert (
        load_config(recipe(), ["model=Qwen/Qwen2.5-1.5B"], processes=1).model == "Qwen/Qwen2.5-1.5B"
    )


def test_the_batch_must_hold_whole_groups(recipe):
    path = recipe()
    cfg = load_config(path, processes=1)
    check_batch(cfg, 2)  # 4 x 2 x 1 = 8 = 2 groups of 4
    with pytest.raises(ConfigError) as e:
        load_config(path, ["train.per_device_train_batch_size=6"], processes=1)
    assert str(e.value) == (
        f"{path}: train.per_device_train_batch_size (6) x 1 process x "
        "train.gradient_accumulation_steps (1) = 6 completions per step, "
        "not a multiple of rollout.num_generations (4)"
    )
    # Under `accelerate launch` the process count comes from WORLD_SIZE.
    load_config(path, ["train.per_device_train_batch_size=2"], processes=2)
    with pytest.raises(ConfigError, match="x 3 processes x"):
        load_config(path, ["train.per_device_train_batch_size=2"], processes=3)


def test_yaml_errors_and_missing_config(tmp_path):
    with pytest.raises(ConfigError, match=r"no such config file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny\ntrain: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: YAML syntax error at line 3"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- model\n")
    with pytest.raises(ConfigError, match="a recipe is a mapping"):
        load_config(listed)


def test_parse_set_nests_dotted_keys_and_reads_yaml_scalars():
    assert parse_set(["train.max_steps=5", "rollout.top_p=0.9", "rewards.writing.judge=http://x:1",
                      "model=tiny", "train.save_total_limit=null"], "f") == {
        "train": {"max_steps": 5, "save_total_limit": None},
        "rollout": {"top_p": 0.9},
        "rewards": {"writing": {"judge": "http://x:1"}},
        "model": "tiny",
    }  # fmt: skip
    with pytest.raises(ConfigError, match="must look like key=value"):
        parse_set(["train.max_steps"], "f")


def test_suggestions():
    keys = known_keys()
    assert "rewards.writing.judge_model" in keys and "train.max_steps" in keys
    assert suggest("train.max_stpes", keys) == " (did you mean 'train.max_steps'?)"
    assert suggest("rollout.vllm_server_url", keys) == " (did you mean 'rollout.vllm_server'?)"
    assert suggest("completely.unrelated", keys) == ""


def test_the_grpo_config_follows_the_recipe(recipe):
    from longwrite.rl.train import build_grpo_config

    cfg = load_config(recipe(), ["rewards.length.weight=2", "trl.loss_type=grpo"], processes=1)
    args = build_grpo_config(cfg, [2.0, 1.0])
    assert args.multi_objective_aggregation == "normalize_then_sum"
    assert args.num_generations == 4 and args.temperature == 0.8 and args.top_p == 1.0
    assert args.epsilon == 0.2 and args.beta == 0.0 and args.max_completion_length == 16
    assert args.reward_weights == [2.0, 1.0] and args.loss_type == "grpo"
    assert args.learning_rate == 0.001 and args.max_steps == 2 and args.save_steps == 10
    assert args.use_vllm is False and args.bf16 is False  # no GPU here: precision auto is fp32
    server = load_config(
        recipe(),
        ["rollout.engine=vllm-server", "rollout.vllm_server=http://10.0.0.2:8000"],
        processes=1,
    )
    args = build_grpo_config(server, [1.0, 1.0])
    assert args.use_vllm and args.vllm_mode == "server"
    assert args.vllm_server_base_url == "http://10.0.0.2:8000"


def test_trl_keys_are_checked_before_any_model_loads(recipe, monkeypatch):
    import trl

    from longwrite.rl.train import run_train

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(trl, "GRPOTrainer", no_model)
    path = recipe()
    for override, message in [
        ("trl.loss_typ=grpo", "unknown key 'trl.loss_typ' (did you mean 'trl.loss_type'?)"),
        ("trl.temperature=0.1", "trl.temperature: set rollout.temperature instead"),
        ("trl.generation_batch_size=6", "TRL rejects the settings: generation_batch_size (6)"),
    ]:
        cfg = load_config(path, [override], processes=1)
        with pytest.raises(ConfigError) as e:
            run_train(cfg)
        assert message in str(e.value)
    assert not (path.parent / "run").exists()  # nothing written either


def test_a_used_output_dir_needs_resume(recipe, tmp_path):
    from longwrite.rl.train import run_train

    (tmp_path / "run" / "checkpoint-2").mkdir(parents=True)
    cfg = load_config(recipe(), processes=1)
    with pytest.raises(ConfigError, match="already holds a run .checkpoint-2.: pass --resume"):
        run_train(cfg)


def test_cli_errors_are_one_line_and_exit_2_with_no_model(recipe):
    path = recipe()
    for extra, message in [
        (["--set", "rollout.temprature=0.5"], "(did you mean 'rollout.temperature'?)"),
        (["--set", "train.max_steps=ten"], "train.max_steps must be an integer"),
        (["--set", "train.per_device_train_batch_size=6"], "not a multiple of"),
        (["--set", "data=missing.jsonl"], "data: no such file or folder: missing.jsonl"),
    ]:
        code, out, err = run_cli(["rl", "train", path, *extra])
        assert code == 2, err
        assert err.count("\n") == 1 and err.startswith(f"longwrite: error: {path}: ")
        assert message in err
        assert out.strip() == "HEAVY:"  # neither torch, transformers nor trl was imported
    code, _, err = run_cli(["rl", "train", "no-such-recipe.yaml"])
    assert code == 2 and err == "longwrite: error: no-such-recipe.yaml: no such config file\n"


def test_cli_help_lists_the_commands():
    result = CliRunner().invoke(rl_app, ["--help"])
    assert result.exit_code == 0
    for name in ("train", "prepare", "plot", "serve-rollouts"):
        assert name in result.output


def test_serve_rollouts_builds_the_trl_command(recipe):
    assert serve_command("m", server="http://10.0.0.2:8001", tp=4, dp=2, max_model_len=16384) == [
        "trl", "vllm-serve", "--model", "m", "--tensor_parallel_size", "4",
        "--data_parallel_size", "2", "--host", "0.0.0.0", "--port", "8001",
        "--gpu_memory_utilization", "0.9", "--max_model_len", "16384",
    ]  # fmt: skip
    assert (
        serve_command("m", server=None)[serve_command("m", server=None).index("--port") + 1]
        == "8000"
    )
    path = recipe()
    result = CliRunner().invoke(
        rl_app,
        ["serve-rollouts", str(path), "--dry-run", "--tp", "2", "--set", "model=Qwen/Qwen2.5-7B",
         "--set", "rollout.vllm_server=http://0.0.0.0:8123"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "trl vllm-serve --model Qwen/Qwen2.5-7B --tensor_parallel_size 2 --data_parallel_size 1 "
        "--host 0.0.0.0 --port 8123 --gpu_memory_utilization 0.9"
    )


def test_the_recipes_in_rl_are_valid(monkeypatch):
    """Every shipped recipe parses and has whole groups at its documented process count."""
    monkeypatch.chdir(REPO)
    recipes = sorted((REPO / "rl").glob("*.yaml"))
    assert (REPO / "rl" / "tiny-cpu.yaml") in recipes and len(recipes) >= 4
    for path in recipes:
        text = path.read_text()
        if "\nmodel:" not in "\n" + text:  # accelerate / deepspeed configs
            continue
        processes = int(next(line.split(":")[1] for line in text.splitlines()
                             if line.startswith("# processes:")))  # fmt: skip
        cfg = load_config(path, processes=processes, for_training=False)
        assert isinstance(cfg, RunConfig)
        check_batch(cfg, processes)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rollout=5", "rollout must be a mapping of keys, not 5"),
        ("rewards.length=[1]", "rewards.length must be a mapping of keys, not [1]"),
        ("trl=5", "trl must be a mapping of GRPOConfig fields, not 5"),
        ("train.max_steps=null", "train.max_steps must be an integer, not null"),
        ("rollout.top_p=nan", "rollout.top_p must be a number, not 'nan'"),  # only 1e-6 style
        ("train.precision=bf17", "train.precision must be one of auto, bf16, fp16, fp32, not"),
        ("model=", "model is required"),
        ("rewards.writing.judge=5", "rewards.writing.judge must be a string, not 5"),
    ],
)  # fmt: skip
def test_misshapen_values_are_one_line_too(recipe, override, message):
    path = recipe()
    with pytest.raises(ConfigError) as e:
        load_config(path, [override], processes=1)
    assert str(e.value).startswith(f"{path}: {message}") and "\n" not in str(e.value)


def test_a_mistyped_key_is_named_before_the_faults_it_causes(recipe):
    # The misspelt key leaves a default behind and a bad value beside it: the typo is the news.
    path = recipe()
    with pytest.raises(ConfigError, match=r"unknown key 'rollout.temprature' \(did you mean"):
        load_config(path, ["rollout.top_p=high", "rollout.temprature=0.5"], processes=1)


def test_rewards_switch_on_and_off_and_the_recipe_is_frozen(recipe):
    path = recipe()
    cfg = load_config(path, ["rewards.length=true", "rewards.format=false"], processes=1)
    assert cfg.rewards.enabled() == ["length"] and cfg.rewards.length.weight == 1.0
    assert cfg.train.learning_rate == 0.001 and isinstance(cfg.rollout.top_p, float)
    with pytest.raises((ValueError, AttributeError)):  # frozen
        cfg.train.max_steps = 3  # type: ignore[misc]


def test_the_resolved_recipe_loads_back_as_the_same_recipe(recipe, tmp_path):
    """What `rl train` writes to RUN/config.yaml is itself a valid recipe, equal to the one run."""
    import yaml

    sets = ["rewards.length.max_words=99", "rewards.writing.judge=http://127.0.0.1:9"]
    cfg = load_config(recipe(), sets, processes=1)
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(cfg.to_json(), sort_keys=False))
    again = load_config(saved, for_training=False)
    assert again.to_json() == cfg.to_json() and again.source == str(saved)
    assert again.rewards.enabled() == ["length", "writing"]  # format: null in the file
    assert again.rewards.length.max_words == 99
