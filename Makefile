# User-facing commands. The build itself is CMake (CMakePresets.json).
JOBS ?= $(shell nproc)
PORT ?= 4000
CONFIG ?= examples/config.yaml

.PHONY: all build deps run test unit e2e asan fuzz bench format format-check lint clean

all: build

build:
	@cmake --preset release >/dev/null
	@cmake --build build -j$(JOBS)

deps:
	@scripts/deps.sh

run: deps build
	./build/llmux --config $(CONFIG) --port $(PORT)

test: deps
	@scripts/test.sh

unit: build
	@ctest --test-dir build -L unit --output-on-failure

e2e: build
	@scripts/e2e.sh build

bench:
	@scripts/deps.sh --bench
	@bench/run.sh
	@BENCH_NO_BUILD=1 bench/paths.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

lint:
	@scripts/lint.sh

clean:
	rm -rf build build-dev build-fuzz build-tsan build-cov
