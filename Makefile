# The two commands of the README: `make bench` and `make test`.
# Everything is built by CMake in build/<flavour>; this file only drives it.

CMAKE ?= cmake
CC ?= cc
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BENCH_FLAGS ?=

.PHONY: all bench test deps test-plain test-asan test-tsan clean

all: build/release/Makefile
	$(CMAKE) --build build/release -j $(JOBS)

build/release/Makefile:
	$(CMAKE) -S . -B build/release -DCMAKE_BUILD_TYPE=Release \
	    -DCREW_TESTS=OFF

# Build optimised and run the seed workload (the main job).
bench: build/release/Makefile
	$(CMAKE) --build build/release -j $(JOBS) --target seed
	./build/release/bench/seed $(BENCH_FLAGS)

# Install what the tests need, then run the suite plain, under
# AddressSanitizer + UBSan, and under ThreadSanitizer.
test: deps
	./scripts/test.sh

deps:
	./scripts/deps.sh

test-plain test-asan test-tsan: deps
	./scripts/test.sh $(@:test-%=%)

clean:
	rm -rf build
