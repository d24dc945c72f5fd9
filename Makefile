# Convenience entry points; the build itself is CMake (CMakeLists.txt).
BUILD ?= build
JOBS ?= 2
MAKEFLAGS += --no-print-directory

.PHONY: all deps build demo test test-c abi-check clean

all: build

deps:
	./scripts/deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

# The main job: a sandbox on the local backend (create, exec, stream, files).
demo: build
	MATCHLOCK_BIN=$(CURDIR)/$(BUILD)/matchlock-local $(BUILD)/example_demo

# Every test suite.
test: build
	./scripts/test-all.sh $(BUILD)

test-c: build
	$(BUILD)/mlk_tests -j$(JOBS)

abi-check: build
	./scripts/abi-check.sh $(BUILD)

clean:
	rm -rf $(BUILD)

# Benchmarks against the canned peer (bench/, docs/benchmarks.md): a Release
# build of its own, then the floor client and bench_core, which prints a
# table.  Not part of `make test`.  BENCH_ARGS=--quick for a short run.
BENCH_BUILD ?= build-bench
.PHONY: bench
bench: deps
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release -DMLK_BUILD_TESTS=OFF -DMLK_BUILD_LOCAL=OFF >/dev/null
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target canned_peer floor_client bench_core
	$(BENCH_BUILD)/bench/floor_client $(BENCH_BUILD)/bench/canned_peer 20000 3
	$(BENCH_BUILD)/bench/bench_core $(BENCH_ARGS)
