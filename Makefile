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
	test-plain test-asan test-tsan test-clang test-style test-consumer \
	deb test-deb test-aarch64

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

# Install the header, libcrew.a, libcrew.so, the CMake package, crew.pc and
# the man pages under $(DESTDIR)$(PREFIX) (docs/install.md).
install: $(RELEASE_DIR)/Makefile
	$(CMAKE) --build $(RELEASE_DIR) -j $(JOBS) \
	    --target crew crew_shared crew_man
	DESTDIR="$(DESTDIR)" $(CMAKE) --install $(RELEASE_DIR) \
	    --prefix "$(PREFIX)"

# Install what the tests need, then check the style, run the suite plain,
# under AddressSanitizer + UBSan, under ThreadSanitizer and built with
# clang, build a consumer program against the installed library, and
# build the Debian packages.
test: deps
	./scripts/test.sh

# The Debian packages libcrew0 and libcrew-dev (debian/), built from a copy
# of the tree in build/deb and checked; the .deb files land in build/deb.
deb: deps
	./scripts/deb.sh

deps-build:
	./scripts/deps.sh build

deps:
	./scripts/deps.sh

test-plain test-asan test-tsan test-clang test-style test-consumer \
test-deb test-aarch64: deps
	./scripts/test.sh $(@:test-%=%)

style: deps
	./scripts/style.sh

# Lay out the tests with clang-format (the library is laid out by hand).
format:
	find tests -name '*.[ch]' -exec clang-format -i {} +

clean:
	rm -rf build

# The API fuzzer (tests/fuzz): libFuzzer with clang, ASan and UBSan, for
# FUZZ_SECONDS.  New inputs go to build/fuzz/corpus (the committed seeds
# in tests/fuzz/corpus are read only); a crash's reproducer goes to
# tests/fuzz/crashes/, which the fuzz.corpus test replays from then on.
FUZZ_SECONDS ?= 60
FUZZ_FLAGS ?=

.PHONY: fuzz

fuzz: deps build/fuzz/Makefile
	$(CMAKE) --build build/fuzz -j $(JOBS) --target fuzz_api
	mkdir -p build/fuzz/corpus tests/fuzz/crashes
	ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1} \
	./build/fuzz/tests/fuzz/fuzz_api -max_total_time=$(FUZZ_SECONDS) \
	    -max_len=512 -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
	    -artifact_prefix=tests/fuzz/crashes/ $(FUZZ_FLAGS) \
	    build/fuzz/corpus tests/fuzz/corpus

build/fuzz/Makefile:
	CC=clang $(CMAKE) -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCREW_SANITIZE="address;undefined" -DCREW_LIBFUZZER=ON \
	    -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link" \
	    -DCREW_BENCH=OFF -DCREW_EXAMPLES=OFF

# crew against its peers on every workload of issue 4 (bench/peers):
# installs the peers when missing, writes bench/results/W*.{md,csv} and
# ns_per_task.png.  PEERS_FLAGS=--scale for a quick run.
.PHONY: bench-peers
PEERS_FLAGS ?=
bench-peers: deps-build
	./scripts/bench-peers.sh $(PEERS_FLAGS)
