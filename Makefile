# Two entry points for a fresh CPU machine (see README): `make demo` and `make test`.
# Both create .venv once, with the CPU build of torch pinned by .ci/constraints-cpu.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml .ci/constraints-cpu.txt | cksum | cut -d' ' -f1)
# vllm's wheel and the few packages its Python API imports on a CPU, for the contract test.
CONTRACT := $(VENV)/.vllm-contract-$(shell cat .ci/vllm-contract.txt | cksum | cut -d' ' -f1)
# The second vLLM of the tested matrix (the newest TRL supports), in a folder of its own that
# the tests put first on PYTHONPATH in a child process (tests/test_matrix_vllm.py).
RL_VLLM := $(VENV)/contract/vllm-rl
CONTRACT_RL := $(VENV)/.rl-contract-$(shell cat .ci/vllm-contract-rl.txt | cksum | cut -d' ' -f1)

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml .ci/constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c .ci/constraints-cpu.txt -e '.[dev,rl]'
	rm -f $(VENV)/.installed-* && touch $@

# The main job on a tiny random model built here (no model hub): the pipeline is real,
# the text is noise.
demo: $(STAMP)
	$(BIN)/python -m longwrite.tiny runs/tiny-model
	$(BIN)/longwrite "Write a 300-word story about a lighthouse keeper" --words 300 \
		--model runs/tiny-model --max-tokens 400 --seed 0
	@echo
	@echo "(demo: the tiny model's weights are random, so its text is noise; the pipeline is real)"

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

test: $(STAMP) $(CONTRACT) $(CONTRACT_RL)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check longwrite tests bench
	$(BIN)/ruff format --check longwrite tests bench

# Every performance goal; each script's last line is `NAME: ratio=R goal...`.
# bench/targets.py reads ../shared/data/longbench_write.jsonl unless given --data PATH.
bench: $(STAMP)
	for b in render engine_overhead rewards batch batch_client rl_step targets startup runlog guard arena sections; do \
		$(BIN)/python bench/$$b.py | tail -n 1; done

clean:
	rm -rf $(VENV) runs
