# The commands of the README: `make bench`, `make test`, `make install`.
# Everything is built by CMake in build/<flavour>; this file only drives it.

CMAKE ?= cmake
CC ?= cc
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BENCH_FLAGS ?=
# Where `make install` puts crew; DESTDIR (empty) stages it under a root.
PREFIX ?= /usr/local
DESTDIR ?=
# The optimised build that `make`, `make bench` and `make install` use.
RELEASE_DIR ?= build/release

.PHONY: all bench bench-locks stress install test deps deps-build style format clean \
	test-plain test-asan test-tsan test-clang test-style test-consumer

all: $(RELEASE_DIR)/Makefile
	$(CMAKE) --build $(RELEASE_DIR) -j $(JOBS)

$(RELEASE_DIR)/Makefile:
	$(CMAKE) -S . -B $(RELEASE_DIR) -DCMAKE_BUILD_TYPE=Release \
	    -DCREW_TESTS=OFF

# Build optimised and run the seed workload (the main job).
bench: deps-build $(RELEASE_DIR)/Makefile
	$(CMAKE) --build $(RELEASE_DIR) -j $(JOBS) --target seed
	./$(RELEASE_DIR)/bench/seed $(BENCH_FLAGS)

# The queue lock choices on a contended workload (bench/locks.c).
bench-locks: deps-build $(RELEASE_DIR)/Makefile
	$(CMAKE) --build $(RELEASE_DIR) -j $(JOBS) --target locks
	./$(RELEASE_DIR)/bench/locks $(BENCH_FLAGS)

# Run the stress harness long (many seeds) and print its totals.
STRESS_FLAGS ?= --seconds 60 --threads 4

stress: deps build/stress/Makefile
	$(CMAKE) --build build/stress -j $(JOBS) --target stress
	./build/stress/tests/stress/stress $(STRESS_FLAGS)

build/stress/Makefile:
	$(CMAKE) -S . -B build/stress -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCREW_BENCH=OFF -DCREW_EXAMPLES=OFF

# Install the header, libcrew.a, libcrew.so, the CMake package and crew.pc
# under $(DESTDIR)$(PREFIX) (docs/install.md).
install: $(RELEASE_DIR)/Makefile
	$(CMAKE) --build $(RELEASE_DIR) -j $(JOBS) --target crew crew_shared
	DESTDIR="$(DESTDIR)" $(CMAKE) --install $(RELEASE_DIR) \
	    --prefix "$(PREFIX)"

# Install what the tests need, then check the style, run the suite plain,
# under AddressSanitizer + UBSan, under ThreadSanitizer and built with
# clang, and build a consumer program against the installed library.
test: deps
	./scripts/test.sh

deps-build:
	./scripts/deps.sh build

deps:
	./scripts/deps.sh

test-plain test-asan test-tsan test-clang test-style test-consumer: deps
	./scripts/test.sh $(@:test-%=%)

style: deps
	./scripts/style.sh

# Lay out the tests with clang-format (the library is laid out by hand).
format:
	find tests -name '*.[ch]' -exec clang-format -i {} +

clean:
	rm -rf build
