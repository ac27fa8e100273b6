# edan: this Makefile only drives CMake, CTest and bats.
BUILD   ?= build
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=
BIN      = $(BUILD)/bin

.PHONY: all deps configure build test unit cli install bench demo clean asan

all: build

deps:
	@bash scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

configure: $(BUILD)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

cli: build
	EDAN_BIN=$(abspath $(BIN)) EDAN_TESTS_BIN=$(abspath $(BUILD)/tests) JOBS=$(JOBS) tests/run-cli.sh tests/cli

test: unit cli

install: build
	cmake --install $(BUILD)

# One JSON document on stdout (the build's messages go to stderr);
# bench/README.md lists the figures and the EDAN_BENCH_* knobs.
bench:
	@$(MAKE) --no-print-directory build >&2
	@bash bench/run.sh $(abspath $(BIN))

demo: build
	@bash examples/demo/run.sh $(abspath $(BIN))

clean:
	rm -rf $(BUILD) demo-out
