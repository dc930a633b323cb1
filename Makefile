# The two commands the README opens with, and a few more.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test down status bootstrap lint

bootstrap:
	@bash deploy/local/bootstrap.sh

## Bring the whole stack up and stream a synthetic hospital through Vigil.
demo: bootstrap
	$(BIN)/vigil demo

## The whole test suite (unit, integration, e2e) on the real local stack.
test: bootstrap lint
	bash deploy/local/stack.sh up kafka postgres
	$(BIN)/pytest -p no:cacheprovider --durations=25

## Stop everything `make demo` or `make test` started.
down:
	-$(BIN)/vigil down

status:
	$(BIN)/vigil status

## ruff, and mypy (strict on the core, vigil/; normal elsewhere): part of `make test`.
lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
