# Convenience entry points; the build itself is CMake (CMakeLists.txt).
BUILD ?= build
JOBS ?= 2
MAKEFLAGS += --no-print-directory

.PHONY: all deps build demo test test-c test-portable check-macos abi-check clean

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

# The end-to-end suites of C, Python, Node and Lua against the server
# MATCHLOCK_BIN names (a real Matchlock, or matchlock-local by default);
# docs/testing.md.  Not a dependency of `test`, which runs it itself.
MATCHLOCK_BIN ?= $(CURDIR)/$(BUILD)/matchlock-local
.PHONY: test-e2e
test-e2e: build
	MATCHLOCK_BIN="$(MATCHLOCK_BIN)" ./scripts/test-e2e.sh $(BUILD)

# The API reference (HTML and man pages) from the header's comments, with
# Doxygen from Debian; `cmake --install` installs it once built.
.PHONY: docs
docs: build
	./scripts/deps.sh doxygen
	cmake -S . -B $(BUILD) >/dev/null
	cmake --build $(BUILD) --target docs
	@echo "API reference: $(BUILD)/docs/html/index.html, man pages in $(BUILD)/docs/man/man3"

# The macOS paths: the C suite on a build with every POSIX fallback forced,
# and the cross-compiled macOS build (both part of `make test`).
test-portable: deps
	cmake -S . -B build-portable -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMLK_FORCE_PORTABLE=ON -DMLK_BUILD_LUA=OFF >/dev/null
	cmake --build build-portable -j$(JOBS) --target mlk_tests matchlock-local mlk_hostile_peer
	build-portable/mlk_tests -j$(JOBS)

check-macos: deps
	./scripts/check-macos.sh build-macos

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
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target canned_peer floor_client bench_core bench_codec
	$(BENCH_BUILD)/bench/floor_client $(BENCH_BUILD)/bench/canned_peer 20000 3
	$(BENCH_BUILD)/bench/bench_codec
	$(BENCH_BUILD)/bench/bench_core $(BENCH_ARGS)

# Sanitizers, valgrind and fuzzing (docs/testing.md).  test-asan and a
# bounded fuzz run are part of `make test` (scripts/test-all.sh).
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 600
.PHONY: build-asan test-asan test-valgrind fuzz fuzz-quick
build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMLK_SANITIZE=address,undefined >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS) --target mlk_tests matchlock-local

# The Criterion suite under AddressSanitizer + UBSan (+ LeakSanitizer).
test-asan: build-asan
	./scripts/test-asan.sh $(ASAN_BUILD)

# The Criterion suite once under valgrind memcheck (slow; not in make test).
# A tree of its own: Criterion's workers re-execute the test binary, so a
# rebuild of $(BUILD) during the run would hand them a different program.
VALGRIND_BUILD ?= build-valgrind
test-valgrind: deps
	cmake -S . -B $(VALGRIND_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(VALGRIND_BUILD) -j$(JOBS) --target mlk_tests matchlock-local
	./scripts/test-valgrind.sh $(VALGRIND_BUILD)

# Long fuzzing: FUZZ_SECONDS per target (default 600); FUZZ_TARGETS to pick.
fuzz: deps
	FUZZ_SEED=$${FUZZ_SEED:-0} FUZZ_BUILD=$(FUZZ_BUILD) JOBS=$(JOBS) ./scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The bounded run make test does (25 s per target).
fuzz-quick: deps
	FUZZ_BUILD=$(FUZZ_BUILD) JOBS=$(JOBS) ./scripts/fuzz.sh 25

# Binding benchmarks (bench/python, bench/lua, bench/node; docs/benchmarks.md
# "Bindings"): each builds what it needs (the Release tree $(BENCH_BUILD) for
# the canned peer, the floor client and bench_core; a fresh venv with
# ./python and the official `matchlock` from PyPI; the Lua modules for Lua
# 5.4 and LuaJIT; the Node addon) and prints the floor, the C core and the
# binding side by side; bench-bindings runs them all in one run
# (bench/all.sh: every client against one peer, ratios to the floor).
# Not part of `make test`.  BENCH_REPS, BENCH_N and
# BENCH_STREAM_BYTES shape the runs.
.PHONY: bench-bindings bench-python bench-lua bench-node
bench-bindings: deps
	BENCH_BUILD=$(BENCH_BUILD) JOBS=$(JOBS) ./bench/all.sh
bench-python: deps
	BENCH_BUILD=$(BENCH_BUILD) JOBS=$(JOBS) ./bench/python/run.sh
bench-lua: deps
	BENCH_BUILD=$(BENCH_BUILD) JOBS=$(JOBS) ./bench/lua/run.sh
bench-node: deps
	BENCH_BUILD=$(BENCH_BUILD) JOBS=$(JOBS) ./bench/node/run.sh

# Release artifacts, each installable on its own (docs/packaging.md):
# dist/matchlock-lua-V.tar.gz + its rockspec (lua/dist.sh), the Python sdist
# and the cp310-abi3 wheels for x86_64 and aarch64, manylinux with a glibc
# floor of 2.28 (python/build-dist.sh), the npm tarball with prebuilds for
# linux-x64 and linux-arm64, glibc >= 2.28 (node/scripts/pack.js).  The
# binaries are built by zig cc, with libevent and msgpack-c from Debian's
# source packages (scripts/cross-deps.sh, cached in .tools/).
DIST ?= dist
.PHONY: dist dist-lua dist-python dist-node test-packages
dist: dist-lua dist-python dist-node
dist-lua:
	./lua/dist.sh $(DIST)
dist-python:
	./python/build-dist.sh $(abspath $(DIST))
dist-node:
	mkdir -p $(DIST) && cd node && { [ -f node_modules/node-addon-api/napi.h ] || npm ci --no-audit --no-fund --ignore-scripts; } && npm pack --pack-destination $(abspath $(DIST))

# Each package installed from its artifact outside the tree, running the
# scenario (part of make test).
test-packages: build
	./scripts/test-packages.sh $(BUILD)
