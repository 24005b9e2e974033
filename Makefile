# The suite's commands. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-$(shell cat requirements/dev.txt pyproject.toml | cksum | cut -d' ' -f1)
NODE_INSTALLED := node_modules/.installed-$(shell cat package-lock.json | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help install run test lint format bench lock messages config-table clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(INSTALLED): requirements/dev.txt pyproject.toml
	@deploy/dev/system-deps.sh run
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@rm -f $(VENV)/.installed-*
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements/dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

$(NODE_INSTALLED): package.json package-lock.json
	@deploy/dev/system-deps.sh run
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The join page serves the Twilio Video SDK itself (no outside CDN): a copy of the pinned npm build.
VIDEO_SDK := services/consult/static/vendor/twilio-video.min.js
$(VIDEO_SDK): $(NODE_INSTALLED)
	@mkdir -p $(@D)
	cp node_modules/twilio-video/dist/twilio-video.min.js $@

install: $(INSTALLED) $(NODE_INSTALLED) $(VIDEO_SDK) ## Create .venv and node_modules with the pinned dependencies

run: install ## Start the whole suite on its embedded defaults, with the demo clinic
	@deploy/dev/run.sh

test: install ## Install what the tests need and run every test
	@deploy/dev/system-deps.sh test
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## Rewrite the code with ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install ## Run the benchmarks and print their figures
	@deploy/dev/system-deps.sh bench
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

lock: install ## Re-pin requirements/*.txt from pyproject.toml
	$(BIN)/pip-compile -q --strip-extras --no-header --no-emit-index-url --no-emit-find-links -o requirements/main.txt pyproject.toml
	$(BIN)/pip-compile -q --strip-extras --no-header --no-emit-index-url --no-emit-find-links --extra dev -o requirements/dev.txt pyproject.toml

# The patient pages' message catalogues (booking's pages, check-ins' pages), each <code folder>:<translations>:
# extract the English messages, merge them into every language's .po (new ones arrive untranslated), compile the
# .mo files the pages read. Translate, then run it again.
CATALOGUES := services/booking/pages:services/booking/pages/translations:booking-pages services/checkins:services/checkins/translations:check-in-pages
messages: install ## Update the patient pages' catalogues (booking, check-ins) from the code and compile them
	@set -e; for c in $(CATALOGUES); do \
	  src=$${c%%:*}; rest=$${c#*:}; out=$${rest%%:*}; name=$${rest#*:}; \
	  $(BIN)/pybabel -q extract -F babel.cfg -k lazy_gettext -k N_ --add-comments=TRANSLATORS: --no-location --sort-output --project="telehealth-suite $$(echo $$name | tr - " ")" -o $$out/messages.pot $$src; \
	  $(BIN)/pybabel -q update -i $$out/messages.pot -d $$out -w 110 --ignore-obsolete; \
	  $(BIN)/pybabel compile -d $$out --statistics; \
	done

config-table: install ## Print the README's table of environment variables (from the config classes)
	@$(BIN)/python -c 'from shared.config import settings_table; from services.booking.config import BookingConfig; from services.notify.config import NotifyConfig; from services.consult.config import ConsultConfig; from services.checkins.config import CheckinsConfig; from deploy.suitectl.dashboard import DashboardConfig; print(settings_table(BookingConfig, NotifyConfig, ConsultConfig, CheckinsConfig, DashboardConfig))'

clean: ## Remove the virtualenv, local databases and caches
	rm -rf $(VENV) var node_modules .mypy_cache .ruff_cache artifacts services/consult/static/vendor
