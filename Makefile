# Two commands for a newcomer: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := run

.PHONY: setup run test build bench soak clean

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

# One hour of mixed load (bench/soak.py); SOAK_ARGS="--minutes 4 --cameras 4" for a short check.
soak: build
	python3 bench/soak.py $(SOAK_ARGS)

clean:
	cargo clean
