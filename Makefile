# zoff — convenience wrapper around CMake.
#   make demo    build, then train the example model with offload on the sim device
#   make test    install missing packages, configure, build with -Werror, run all tests
#   make bench   the three benchmarks at small default sizes
#   make format  clang-format every C/CUDA source
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ZOFF := $(BUILD)/tools/zoff

.PHONY: all deps configure build test test-quick demo bench format clean install

all: build

deps:
	@scripts/deps.sh --with-python

configure: deps
	@cmake -S . -B $(BUILD) -DZOFF_WERROR=ON $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-quick: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L quick

demo: build
	$(ZOFF) train

bench: build
	$(ZOFF) bench adam
	$(ZOFF) bench nvme --quick
	$(ZOFF) bench step

format:
	@git ls-files '*.c' '*.h' '*.cu' '*.cuh' | xargs clang-format -i

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD)
