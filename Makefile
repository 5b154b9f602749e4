# Two commands for a newcomer: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := run

.PHONY: setup run test test-arm64 build images bench clean

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
images: setup
	@KAMERA_ARCHES="$(or $(ARCHES),amd64,arm64)" bash scripts/images.sh $(IMAGES)

# The arm64 worker under qemu-user-static (make test runs it when qemu-user-static is installed).
test-arm64: setup
	@bash scripts/test-arm64.sh

bench: setup
	@bash bench/run.sh

clean:
	cargo clean
