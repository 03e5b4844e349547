# IRMS: `make demo` and `make test` each do all set-up on a fresh machine (idempotent).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo demo-stop test lint bench clean i18n i18n-check

$(STAMP): pyproject.toml scripts/install-system
	scripts/install-system
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# The gettext catalogues' .mo (not in git) are compiled from the .po at every setup.
setup: $(STAMP)
	$(PY) scripts/i18n compile

# Translators: extract the message ids, update the .po, compile (docs/operations.md "Translations").
i18n: $(STAMP)
	$(PY) scripts/i18n update

i18n-check: $(STAMP)
	$(PY) scripts/i18n check

demo: setup
	$(PY) scripts/demo.py

demo-stop:
	@for f in web simulate station; do p=.demo/$$f.pid; \
	  if [ -f $$p ] && grep -q irms- /proc/$$(cat $$p)/cmdline 2>/dev/null; then \
	    kill $$(cat $$p) && echo "demo $$f stopped"; else echo "demo $$f not running"; fi; done

test: setup
	scripts/run-tests

lint: setup
	$(VENV)/bin/ruff check recorder storage verifier web evidence tests bench scripts/demo.py
	$(VENV)/bin/mypy recorder storage verifier evidence web
	$(VENV)/bin/lint-imports

bench: setup
	scripts/run-bench

clean:
	rm -rf .demo test-artifacts
