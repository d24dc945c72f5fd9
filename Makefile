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
