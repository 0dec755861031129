"""`longwrite rl pretrain` (stage 0): corpus reading, mixing and packing by hand; config errors
before any model loads; the tiny recipe end to end (loss falls, kill -9 and resume, RUN/final
as `model:` of `rl train`)."""

import json
import random

import pytest
from test_rl_config import REPO, kill_at_checkpoint, run_cli

from longwrite.rl.corpus import (
    CorpusError,
    CorpusStats,
    SourceStats,
    documents,
    mix,
    pack,
    source_texts,
)
from longwrite.rl.metrics import read_metrics

RECIPE = "rl/pretrain/tiny-cpu.yaml"


# ---- packing and mixing on hand-made documents -------------------------------------------


def test_packing_accounts_for_every_token_and_restarts_positions_at_documents():
    docs = [("a", [1, 2, 3, 9]), ("b", [4, 5, 9]), ("a", [6, 7, 8, 10, 11, 9]), ("b", [12, 9])]
    seqs = list(pack(docs, 5))
    flat = [t for _, d in docs for t in d]  # 15 tokens: exactly three sequences of 5
    assert [s.input_ids for s in seqs] == [flat[0:5], flat[5:10], flat[10:15]]
    # documents start at 0, and the rest of a document cut by a sequence end starts again
    assert [s.position_ids for s in seqs] == [[0, 1, 2, 3, 0], [0, 1, 0, 1, 2], [0, 1, 2, 0, 1]]
    assert [s.sources for s in seqs][1] == ["b", "b", "a", "a", "a"]
    plain = list(pack(docs, 5, masked=False))
    assert [s.position_ids for s in plain] == [list(range(5))] * 3
    assert [s.input_ids for s in plain] == [s.input_ids for s in seqs]


def test_the_last_partial_sequence_is_the_only_thing_left_out():
    docs = [("a", list(range(1, 8)))]
    seqs = list(pack(docs, 3))
    assert [s.input_ids for s in seqs] == [[1, 2, 3], [4, 5, 6]]  # 7: one token short of a third


def test_short_documents_are_dropped_counted_and_the_rest_end_with_eos():
    stats = SourceStats()
    words = {"one two three": [1, 2, 3], "x": [4], "four five six seven": [5, 6, 7, 8]}
    out = list(documents(words, lambda t: words[t], 0, 3, stats))
    assert out == [[1, 2, 3, 0], [5, 6, 7, 8, 0]]
    assert (stats.documents, stats.dropped, stats.tokens) == (2, 1, 9)


def test_mixing_holds_the_token_shares_over_many_sequences():
    rng = random.Random(1)
    lengths = {"long": [rng.randint(200, 3000) for _ in range(50)], "cot": [40, 300, 1200]}

    def source(name):
        def start(epoch):
            base = 1000 if name == "cot" else 1
            return iter([[base] * n for n in lengths[name]])

        return start

    stats = CorpusStats()
    seqs = pack(mix({"long": source("long"), "cot": source("cot")},
                    {"long": 0.99, "cot": 0.01}, stats), 1024)  # fmt: skip
    counted = {"long": 0, "cot": 0}
    for _, seq in zip(range(400), seqs, strict=False):
        for name in seq.sources:
            counted[name] += 1
    share = counted["cot"] / sum(counted.values())
    assert abs(share - 0.01) < 0.003, share  # 409,600 tokens: within one CoT document
    assert stats.sources["cot"].epochs > 1  # the small source was repeated, not exhausted


def test_a_source_with_no_long_enough_document_is_an_error():
    stats = CorpusStats()

    def empty(epoch):
        return documents(["a"], lambda t: [1], 0, 5, stats.sources.setdefault("s", SourceStats()))

    with pytest.raises(CorpusError, match="no document of at least min_tokens"):
        next(mix({"s": empty}, {"s": 1.0}, stats))


# ---- reading sources ----------------------------------------------------------------------


def write_corpus(root):
    """A small corpus in every format: a folder of .md/.txt files (CRLF in one), JSONL,
    parquet and a dataset saved with save_to_disk."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    rng = random.Random(0)
    words = [
        "harbour",
        "light",
        "keeper",
        "storm",
        "lantern",
        "quay",
        "market",
        "bread",
        "gull",
        "tide",
        "winter",
        "roof",
        "report",
        "city",
        "heat",
        "tree",
        "shade",
        "evening",
        "window",
    ]
    long = root / "long"
    long.mkdir(parents=True)
    for i in range(8):
        text = " ".join(rng.choice(words) for _ in range(120 + 20 * i)) + ".\n"
        (long / f"doc{i}.md").write_text(text)
    (long / "crlf.txt").write_bytes(b"line one of a document\r\nline two\r\n")
    (long / "tiny.txt").write_text("short")
    with (root / "cot.jsonl").open("w") as f:
        for i in range(4):
            f.write(json.dumps({"text": f"<think>plan {i}: " + "count the words. " * 12}) + "\n")
    pq.write_table(pa.table({"body": ["a parquet document " * 20, None]}), root / "p.parquet")
    Dataset.from_dict({"text": ["a saved dataset row " * 10]}).save_to_disk(str(root / "ds"))
    return root


def test_every_source_format_is_read(tmp_path):
    root = write_corpus(tmp_path)
    folder = list(source_texts(root / "long"))
    assert len(folder) == 10 and "line one of a document\nline two\n" in folder
    assert [t[:10] for t in source_texts(root / "cot.jsonl")] == ["<think>pla"] * 4
    assert list(source_texts(root / "p.parquet", "body")) == ["a parquet document " * 20]
    assert list(source_texts(root / "ds")) == ["a saved dataset row " * 10]
    with pytest.raises(CorpusError, match="no 'text' column"):
        list(source_texts(root / "p.parquet"))
    (root / "bad.jsonl").write_text('{"text": "fine"}\nnot json\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl:2: not valid JSON"):
        list(source_texts(root / "bad.jsonl"))


def test_attention_stays_inside_documents_with_packed_positions(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from longwrite.tiny import build_tiny_model

    model = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "m")).eval()
    a, b = [11, 12, 13, 14], [21, 22, 23]
    with torch.no_grad():
        packed = model(
            torch.tensor([a + b]),
            position_ids=torch.tensor([[0, 1, 2, 3, 0, 1, 2]]),
            use_cache=False,
        ).logits[0, 4:]
        alone = model(torch.tensor([b]), use_cache=False).logits[0]
        plain = model(torch.tensor([a + b]), use_cache=False).logits[0, 4:]
    assert torch.allclose(packed, alone, atol=1e-5)
    assert not torch.allclose(plain, alone, atol=1e-3)  # the test can tell the difference


def test_labels_skip_each_documents_first_token():
    import torch

    from longwrite.rl.pretrain import collate

    row = {"input_ids": torch.tensor([5, 6, 7, 8]), "position_ids": torch.tensor([0, 1, 0, 1])}
    assert collate([row])["labels"].tolist() == [[-100, 6, -100, 8]]


# ---- the command --------------------------------------------------------------------------


def corpus_args(root, run):
    return [
        "--set",
        f"corpus.sources.long.path={root / 'long'}",
        "--set",
        f"corpus.sources.cot.path={root / 'cot.jsonl'}",
        "--set",
        f"output_dir={run}",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "corpus.seq_lenght=5"], "unknown key 'corpus.seq_lenght' (did you mean"),
        (["--set", "corpus.packing=tight"], "corpus.packing must be one of auto, masked, plain"),
        (["--set", "corpus.sources.cot.weight=0"], "corpus.sources.cot.weight must be positive"),
        (["--set", "corpus.sources.cot.path=/no/such"], "corpus.sources.cot.path: /no/such: no"),
        (["--set", "corpus.sources.cot.field=body"], "corpus.sources.cot: "),
        (["--set", "train.max_steps=0"], "train.max_steps must be at least 1"),
        (["--set", "trainer=5"], "trainer must be a mapping of TrainingArguments fields"),
        (["--set", "model=/no/model"], "model: no such model folder"),
    ],
)
def test_config_errors_are_one_line_before_any_model_loads(tmp_path, extra, message):
    root = write_corpus(tmp_path)
    code, out, err = run_cli(["rl", "pretrain", RECIPE, *corpus_args(root, tmp_path / "r"), *extra])
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"longwrite: error: {RECIPE}: "), err
    assert message in err
    assert out.strip() == "HEAVY:"  # neither torch nor transformers was imported


def test_dry_run_prints_the_cost_and_trains_nothing(tmp_path):
    root = write_corpus(tmp_path)
    run = tmp_path / "run"
    code, out, err = run_cli(["rl", "pretrain", RECIPE, *corpus_args(root, run), "--dry-run"])
    assert code == 0, err
    # 4 sequences x 128 tokens x 30 steps; the tiny model has 488,064 parameters
    assert "cost: 512 tokens/step x 30 steps = 15.36k tokens;" in err
    assert f"{6 * 488_064 * 15_360:.2e} FLOPs" in err and "at 40% of 989 TFLOPS" in err
    assert not list(run.glob("checkpoint-*")) and not (run / "metrics.jsonl").exists()
    code, _, err = run_cli(["rl", "pretrain", RECIPE, *corpus_args(root, run), "--dry-run",
                            "--set", "cost.gpus=64", "--set", "cost.gpu_tflops=100"])  # fmt: skip
    assert code == 0, err
    tokens = 4 * 64 * 128 * 30
    hours = 6 * 488_064 * tokens / (64 * 100e12 * 0.4) / 3600
    assert "cost: 32.77k tokens/step x 30 steps = 983.04k tokens;" in err
    assert f"{hours:.2f} h on 64 x H100 (none visible here) at 40% of 100 TFLOPS" in err


@pytest.fixture(scope="module")
def tiny_pretrain(tmp_path_factory):
    root = write_corpus(tmp_path_factory.mktemp("corpus"))
    run = root / "run"
    code, out, err = run_cli(["rl", "pretrain", RECIPE, *corpus_args(root, run)])
    assert code == 0, err[-3000:]
    return root, run, out, err


@pytest.mark.slow
def test_tiny_pretrain_lowers_the_loss(tiny_pretrain):
    root, run, out, err = tiny_pretrain
    assert out.splitlines()[0] == str(run / "final")
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 31))
    loss = [r["loss"] for r in records]
    first, last = sum(loss[:5]) / 5, sum(loss[-5:]) / 5
    assert last < first - 2.0, (first, last)  # nats per token: random weights learn fast
    assert all("tokens_per_second" in r and "learning_rate" in r for r in records[1:])
    assert "packing: position ids restart at each document" in err
    # tiny.txt and crlf.txt are under min_tokens (16): counted once, not once per pass
    assert "(2 dropped short)" in err.split("corpus: long")[1].split(";")[0], err[-500:]
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-20", "checkpoint-30"]


@pytest.mark.slow
def test_rl_plot_draws_the_pretraining_curves(tiny_pretrain, tmp_path):
    from longwrite.rl.plots import plot_run

    names = sorted(p.name for p in plot_run(tiny_pretrain[1], tmp_path))
    assert names == ["grad_norm.png", "learning_rate.png", "loss.png", "tokens_per_second.png"]


@pytest.mark.slow
def test_final_starts_an_rl_train_run(tiny_pretrain, tmp_path):
    run = tiny_pretrain[1]
    code, out, err = run_cli(["rl", "train", "rl/tiny-cpu.yaml", "--set", f"model={run / 'final'}",
                              "--set", f"output_dir={tmp_path / 'grpo'}",
                              "--set", "train.max_steps=2"])  # fmt: skip
    assert code == 0, err[-3000:]
    assert "step 2/2" in err and (tmp_path / "grpo" / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_killed_pretrain_resumes_from_its_last_checkpoint(tmp_path):
    root = write_corpus(tmp_path)
    run = tmp_path / "run"
    args = [
        "rl",
        "pretrain",
        RECIPE,
        *corpus_args(root, run),
        "--set",
        "train.max_steps=8",
        "--set",
        "train.save_steps=3",
    ]
    kill_at_checkpoint(args, run / "checkpoint-3")
    assert not (run / "final").exists()
    code, _, err = run_cli(args)
    assert code == 2 and "pass --resume" in err
    code, _, err = run_cli([*args, "--resume"])
    assert code == 0, err[-3000:]
    assert f"resuming from {run}/checkpoint-" in err
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == list(range(1, 9))
    assert (run / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_source_with_only_short_documents_is_one_line(tmp_path):
    root = write_corpus(tmp_path)
    args = [*corpus_args(root, tmp_path / "run"), "--set", "corpus.min_tokens=100000"]
    code, _, err = run_cli(["rl", "pretrain", RECIPE, *args])
    assert code == 2, err[-2000:]
    last = err.rstrip().splitlines()[-1]
    assert last == (f"longwrite: error: {RECIPE}: corpus.sources.long: no document of at "
                    "least min_tokens (10 shorter)")  # fmt: skip
    assert "Traceback" not in err


def test_the_pretraining_recipes_are_valid(monkeypatch):
    from longwrite.rl.config import read_yaml
    from longwrite.rl.pretrain_config import pretrain_from_mapping

    monkeypatch.chdir(REPO)
    recipes = sorted((REPO / "rl" / "pretrain").glob("*.yaml"))
    assert len(recipes) == 3
    per_step = {}
    for path in recipes:
        cfg = pretrain_from_mapping(read_yaml(path), str(path))
        processes = 64 if "64gpu" in path.name else 1
        per_step[path.name] = cfg.sequences_per_step(processes) * cfg.corpus.seq_length
    assert per_step["qwen2.5-32b-64gpu.yaml"] == 512 * 32_768  # the paper's batch
