# Seq-U-Net companion. On a fresh machine:
#   make book    venv, then the reader's book from the committed paper-scale notebooks in book/_build/published/html
#   make test    venv, pytest, every notebook at smoke scale, the book from those (book/_build/smoke/html), the
#                browser test
# Variables: SCALE=published (default: no notebook runs) | smoke | demo | paper (run every notebook at that scale
# first, into build/SCALE, then the book in book/_build/SCALE/html).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCALE ?= published
SUDO  := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The data layer reads verified copies from this mirror instead of downloading (tests and CI must never download).
ifneq ($(wildcard ../shared/data),)
export SEQUNET_DATA_MIRROR := $(abspath ../shared/data)
endif

.PHONY: help venv book test gpu-test unit-tests smoke-book browser-test screenshots chromium npm clean distclean

help:
	@echo "make book [SCALE=published|smoke|demo|paper]  the book in book/_build/SCALE/html (published: the committed"
	@echo "                                               paper-scale notebooks; other scales run the notebooks first)"
	@echo "make test                                      pytest, smoke notebooks, smoke book, browser test"
	@echo "make gpu-test                                  on the GPU machine: every test, the GPU ones run (log in results/gpu-test/)"
	@echo "make screenshots                               refresh book/screenshots/ from the built book"
	@echo "make clean | distclean                         remove build outputs | also the venv and npm files"

# torch goes first and pinned: 2.13.0 resolves to the CPU wheel on local disk, while the unpinned requirement in
# pyproject.toml would let pip pull a multi-GB CUDA build. The stamp skips all this until pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[notebooks,book,test]"
	$(PY) -m pip install --no-deps tinysoundfont==0.3.7   # render extra without pyaudio (see pyproject.toml)
	touch $@

venv: $(STAMP)

# The book vendors MathJax and the widget manager with npm; the browser test needs Chromium and its driver.
npm:
	@command -v npm >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y npm; }

chromium:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver; }

ifeq ($(SCALE),published)
# Committed executed notebooks (paper scale, from a GPU machine): no training, only the book.
book: $(STAMP) npm
	$(PY) -m sequnet book --from results/published --site published
else
# A notebook that fails does not stop the book: it is built from those that passed, and make still fails.
book: $(STAMP) npm
	status=0; $(PY) -m sequnet run --scale $(SCALE) --out build/$(SCALE) || status=$$?; \
	$(PY) -m sequnet book --from build/$(SCALE) --site $(SCALE); exit $$status
endif

test: unit-tests smoke-book browser-test

unit-tests: $(STAMP)
	$(PY) -m pytest -m "not book"

# --strict: a Sphinx warning (broken reference, unknown citation) fails the test build.
smoke-book: $(STAMP) npm
	$(PY) -m sequnet run --scale smoke --out build/smoke
	$(PY) -m sequnet book --from build/smoke --site smoke --strict

browser-test: $(STAMP) chromium
	SEQUNET_BOOK_HTML=book/_build/smoke/html $(PY) -m pytest -m book

# On the GPU machine (no venv there: its own python3 with torch and CUDA): every test, with the GPU ones running.
gpu-test:
	bash benchmarks/gpu_test.sh $(or $(LOG),results/gpu-test/gpu-test.log)

# Committed screenshots of the introduction, the first chapter and the reproduction page, from the built book.
screenshots: $(STAMP) chromium
	SEQUNET_BOOK_HTML=book/_build/published/html SEQUNET_SCREENSHOTS=book/screenshots $(PY) -m pytest -m book -k screenshots

clean:
	rm -rf build book/_build book/_assets book/notebooks book/_toc.yml book/reproduction.md

distclean: clean
	rm -rf $(VENV) book/node_modules book/_vendor
