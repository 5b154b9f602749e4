# Two commands for a newcomer: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := run

.PHONY: setup run test build bench clean

setup:
	@bash scripts/setup.sh test

build:
	@bash scripts/setup.sh run
	cargo build --release -p kamera-worker

run: build
	@bash scripts/run.sh

test: setup
	@bash scripts/test.sh

bench: setup
	@bash bench/run.sh

clean:
	cargo clean
