# edan: this Makefile only drives CMake, CTest and bats.
BUILD   ?= build
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=
BIN      = $(BUILD)/bin

.PHONY: all deps configure build test unit cli install bench demo clean asan fuzz

all: build

deps:
	@bash scripts/deps.sh
	@bash scripts/fetch-blazeface.sh

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

# PREFIX is taken at install time, not from the first configure: the
# installed programs find their library and model relative to themselves.
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# One JSON document on stdout (the build's messages go to stderr);
# bench/README.md lists the figures and the EDAN_BENCH_* knobs.
bench:
	@$(MAKE) --no-print-directory build >&2
	@bash scripts/deps.sh bench >&2
	@bash bench/run.sh $(abspath $(BIN))

demo: build
	@bash examples/demo/run.sh $(abspath $(BIN))

# libFuzzer targets (tests/fuzz), clang with ASan + UBSan, in their own build
# directory; each runs FUZZ_SECONDS and prints its executions.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz:
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DEDAN_FUZZ=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(abspath $(FUZZ_BUILD))

# The unit tests and the BATS suites under AddressSanitizer + UBSan (gcc),
# in their own build directory. LibTorch itself is not instrumented; leak
# checking is off (LibTorch and OpenCV keep allocations until exit).
ASAN_BUILD ?= build-asan
# A small quarantine (ASan keeps freed memory in it, 256 MB by default, before
# reuse): the hostile-input suite measures that a 100 MB line does not raise
# the peak memory by 100 MB, and the quarantine itself would.
ASAN_ENV    = ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1:quarantine_size_mb=16 \
              UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
asan:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDAN_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && $(ASAN_ENV) ctest --output-on-failure -j $(JOBS)
	$(ASAN_ENV) EDAN_BIN=$(abspath $(ASAN_BUILD)/bin) EDAN_TESTS_BIN=$(abspath $(ASAN_BUILD)/tests) \
	  JOBS=$(JOBS) tests/run-cli.sh tests/cli

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(ASAN_BUILD) demo-out
