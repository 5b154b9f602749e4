# Two commands for a newcomer: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := run

.PHONY: setup run test test-arm64 build images bench soak fuzz fuzz-seeds clean

setup:
	@bash scripts/setup.sh test

build:
	@bash scripts/setup.sh run
	cargo build --release -p kamera-worker

run: build
	@bash scripts/run.sh

test: setup
	@bash scripts/test.sh

# OCI images of the worker, the operator and the example processors, amd64 and arm64, built with
# buildah (no daemon) into build/images/ (scripts/images.sh; IMAGES=... ARCHES=amd64 to narrow).
# (Make's `or` splits its arguments on commas, so the default list lives in a variable.)
ARCHES ?= amd64,arm64
images: setup
	@KAMERA_ARCHES="$(ARCHES)" bash scripts/images.sh $(IMAGES)

# The arm64 worker under qemu-user-static (make test runs it when qemu-user-static is installed).
test-arm64: setup
	@bash scripts/test-arm64.sh

bench: setup
	@bash bench/run.sh

# One hour of mixed load (bench/soak.py); SOAK_ARGS="--minutes 4 --cameras 4" for a short check.
soak: build
	python3 bench/soak.py $(SOAK_ARGS)

# Every fuzz target in turn (docs/fuzzing.md): FUZZ_SECONDS per target (default 60) or
# FUZZ_RUNS executions; crash inputs land in fuzz/artifacts.
fuzz:
	@bash scripts/setup.sh fuzz
	@bash scripts/fuzz.sh

# Regenerates the committed seed corpora from real ffmpeg, worker and SDK sessions.
fuzz-seeds:
	@bash scripts/setup.sh run
	@python3 fuzz/seeds.py

clean:
	cargo clean
