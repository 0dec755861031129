# Two entry points for a fresh CPU machine (see README): `make demo` and `make test`.
# Both create .venv once, with the CPU build of torch pinned by .ci/constraints-cpu.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml .ci/constraints-cpu.txt | cksum | cut -d' ' -f1)

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml .ci/constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c .ci/constraints-cpu.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

# The main job on a tiny random model built here (no model hub): the pipeline is real,
# the text is noise.
demo: $(STAMP)
	$(BIN)/python -m longwrite.tiny runs/tiny-model
	$(BIN)/longwrite "Write a 300-word story about a lighthouse keeper" --words 300 \
		--model runs/tiny-model --max-tokens 400 --seed 0
	@echo "(demo: the tiny model's weights are random, so its text is noise; the pipeline is real)"

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check longwrite tests bench
	$(BIN)/ruff format --check longwrite tests bench

bench: $(STAMP)
	$(BIN)/python bench/render.py

clean:
	rm -rf $(VENV) runs
