# Two entry points for a fresh CPU machine (see README): `make demo` and `make test`.
# Both create .venv once and install exactly the versions in the lock, .ci/requirements-lock.txt
# (every package pinned, resolved by uv for Python 3.11 on Linux with the CPU build of torch).
# `make lock` re-resolves it; `make test-latest` runs the suite in .venv-latest against the
# newest releases pyproject's ranges allow, to find a breaking release on purpose.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := .ci/requirements-lock.txt
# LOCKED=0 (test-latest): the newest versions the ranges allow instead of the lock.
LOCKED ?= 1
ifeq ($(LOCKED),1)
INSTALL := -r $(LOCK) -e '.[dev,rl,export,sources]'
INPUTS := pyproject.toml $(LOCK)
else
INSTALL := --upgrade --upgrade-strategy eager -c .ci/constraints-cpu.txt -e '.[dev,rl,export,sources]'
INPUTS := pyproject.toml .ci/constraints-cpu.txt
endif
STAMP := $(VENV)/.installed-$(shell cat $(INPUTS) | cksum | cut -d' ' -f1)
# vllm's wheel and the few packages its Python API imports on a CPU, for the contract test.
CONTRACT := $(VENV)/.vllm-contract-$(shell cat .ci/vllm-contract.txt | cksum | cut -d' ' -f1)
# The second vLLM of the tested matrix (the newest TRL supports), in a folder of its own that
# the tests put first on PYTHONPATH in a child process (tests/test_matrix_vllm.py).
RL_VLLM := $(VENV)/contract/vllm-rl
CONTRACT_RL := $(VENV)/.rl-contract-$(shell cat .ci/vllm-contract-rl.txt | cksum | cut -d' ' -f1)

.PHONY: setup demo test test-latest lock lint bench clean

setup: $(STAMP)

$(STAMP): $(INPUTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(INSTALL)
	rm -f $(VENV)/.installed-* && touch $@

# The main job on a toy model trained here (no model hub): `python -m longwrite.tiny` builds
# a small untrained Qwen2 whose tokenizer knows the words of examples/demo-corpus, then stage 0
# of our recipe (`longwrite rl pretrain`, examples/demo-corpus/pretrain.yaml) trains it on
# that corpus for about a minute on 2 cores. The trained model is a file target: a second
# `make demo` starts writing at once, and a change to the corpus, the recipe, the code that
# builds the model or the lock trains it again (deterministic: fixed seeds).
DEMO := runs/demo
DEMO_MODEL := $(DEMO)/pretrain/final/model.safetensors
DEMO_INPUTS := $(wildcard examples/demo-corpus/[0-9][0-9]-*.md) \
	examples/demo-corpus/pretrain.yaml longwrite/tiny.py longwrite/demo.py \
	prompts/think_en.txt

$(DEMO_MODEL): $(STAMP) $(DEMO_INPUTS)
	@echo "demo: training the toy model once (about a minute on 2 cores; kept in $(DEMO)/)"
	rm -rf $(DEMO)
	$(BIN)/python -m longwrite.tiny $(DEMO)/tiny-model --corpus examples/demo-corpus
	$(BIN)/longwrite rl pretrain examples/demo-corpus/pretrain.yaml

demo: $(DEMO_MODEL)
	@echo
	@echo "demo: the model below is a toy, not LongWriter-Zero: 0.8M parameters trained on this"
	@echo "demo: machine for a minute on the 24 short documents of examples/demo-corpus/."
	@echo
	$(BIN)/longwrite "Write a 250-word story about a lighthouse keeper" --words 250 \
		--model $(DEMO)/pretrain/final --seed 0
	@echo
	@echo "demo: that was the toy model. It learned the format (a hidden plan, then a Markdown"
	@echo "demo: answer) and its corpus by heart: it writes passages of those 24 documents stitched"
	@echo "demo: together. The pipeline around it is the real one. LongWriter-Zero-32B itself needs"
	@echo "demo: two 80 GB GPUs or a server that serves it (README.md, Start here)."

# --no-deps: vllm's own pins (CUDA torch, ...) are for GPU boxes; the test only builds its
# settings objects and parses its CLI (see .ci/vllm-contract.txt).
$(CONTRACT): $(STAMP) .ci/vllm-contract.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		-r .ci/vllm-contract.txt
	rm -f $(VENV)/.vllm-contract-* && touch $@

$(CONTRACT_RL): $(STAMP) .ci/vllm-contract-rl.txt
	rm -rf $(RL_VLLM)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--target $(RL_VLLM) -r .ci/vllm-contract-rl.txt
	rm -f $(VENV)/.rl-contract-* && touch $@

# On every core (pytest-xdist), each test file on one worker: a file's fixtures (the tiny
# model, a trained RL run) are built once. About 8 minutes on 2 cores instead of 13.
test: $(STAMP) $(CONTRACT) $(CONTRACT_RL)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# The suite against the newest releases the ranges allow, in a venv of its own. When it fails,
# fix the code or narrow the range in pyproject.toml, then `make lock` and commit the lock.
test-latest:
	$(MAKE) test VENV=.venv-latest LOCKED=0

# Re-resolve the lock (after changing a dependency in pyproject.toml, or to move to newer
# releases on purpose). uv resolves for Python 3.11 on x86_64 Linux; torch is the CPU build
# (found in PIP_FIND_LINKS where the machine has one, else PyTorch's CPU index). The local
# version label (+cpu) is dropped so that pip on any machine takes 2.13.0 from where it can.
TORCH_SOURCE ?= $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS),--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
lock:
	test -x .venv-lock/bin/uv || { $(PYTHON) -m venv .venv-lock && \
		.venv-lock/bin/python -m pip install --quiet --disable-pip-version-check uv; }
	.venv-lock/bin/uv pip compile pyproject.toml --extra dev --extra rl --extra export --extra sources \
		-c .ci/constraints-cpu.txt \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 $(TORCH_SOURCE) \
		--no-header --no-annotate --quiet -o $(LOCK).new
	{ echo "# Every package of the test and demo environment, pinned. Made by \`make lock\`; do not edit."; \
	  sed -e 's/+cpu$$//' $(LOCK).new; } > $(LOCK) && rm -f $(LOCK).new

lint: $(STAMP)
	$(BIN)/ruff check longwrite tests bench
	$(BIN)/ruff format --check longwrite tests bench

# Every performance goal; each script's last line is `NAME: ratio=R goal...`.
# bench/targets.py reads ../shared/data/longbench_write.jsonl unless given --data PATH.
bench: $(STAMP)
	for b in render engine_overhead rewards batch batch_client rl_step targets startup runlog guard arena sections sections_length parallel index; do \
		$(BIN)/python bench/$$b.py | tail -n 1; done

clean:
	rm -rf .venv .venv-latest .venv-lock runs
