# QForge developer tasks.
#
#   make deps      install the Debian packages the tests need (root), or say how (non-root)
#   make build     debug build of the tests, qforge and the bench (by product; see PRODUCTS)
#   make test      debug unit tests, then the release-mode training tests (QForgeReleaseTests)
#   make release   release build of the qforge tool
#   make demo      release build, then `qforge demo`
#   make clean     remove the build folder
#   make proto     regenerate Sources/QForgeGraph/ONNX/onnx.pb.swift from proto/onnx.proto
#                  (protoc + protoc-gen-swift 1.39.0; builds never run it, the output is committed)
#
# SWIFT_FLAGS is appended to every swift command, e.g.
#   make test SWIFT_FLAGS="--scratch-path .build-mine"

SHELL := /bin/bash
SWIFT ?= swift
SWIFT_FLAGS ?=

# Debian packages the build, the tests and the demo need at run time. One per word.
#   libopenblas0-pthread   OpenBLAS runtime (QForgeTensor dlopens it for GEMM)
#   dataset-fashion-mnist  Fashion-MNIST under /usr/share/datasets/fashion-mnist
#   zlib1g                 libz.so.1 (dlopened to read .gz data files)
#   iverilog               Icarus Verilog: iverilog and vvp simulate generated designs (qforge sim --simulator icarus)
#   verilator              Verilator: fast simulation and lint of generated designs (qforge sim, qforge lint)
#   yosys                  Yosys: synthesis of generated designs (qforge synth, qforge units)
#   qflow                  brings the OSU 0.18 µm standard cells (liberty under /usr/share/qflow/tech/osu018) for --target asic
#   opensta                OpenSTA (sta): slack, Fmax and power of the ASIC netlist
#   nextpnr-ice40          nextpnr: place and route on iCE40 UP5K/HX8K, fit and post-route Fmax (--target ice40)
#   fpga-icestorm          IceStorm: the iCE40 chip database and bitstream tools nextpnr-ice40 works with
DEB_PACKAGES := libopenblas0-pthread dataset-fashion-mnist zlib1g iverilog verilator yosys qflow opensta nextpnr-ice40 fpga-icestorm

# Python modules the interoperability tests use (from PyPI): numpy reads the .npy files QForge
# writes, safetensors reads its model files, qonnx executes its QONNX exports and onnxruntime
# its QDQ exports.
PY_MODULES := numpy safetensors qonnx onnxruntime

RELEASE_FLAGS := -c release -Xswiftc -enable-testing
RELEASE_TEST_FLAGS := $(RELEASE_FLAGS) --filter QForgeReleaseTests

# Builds name their products: swift-protobuf (ONNX import/export) ships a `protoc` built from
# its C++ sources for its build plugin, and a plain `swift build`, `swift build --build-tests`
# or `swift test` without --skip-build compiles it twice (target and host tool) although QForge
# never runs it. QForgePackageTests is every test target (and the qforge tool the CLI tests run).
PRODUCTS := QForgePackageTests qforge QForgeIntegerBench
define build_products
for p in $(PRODUCTS); do $(SWIFT) build $(1) --product $$p $(SWIFT_FLAGS) || exit 1; done
endef

.PHONY: all deps debdeps pydeps build release test test-debug test-release demo clean proto

all: build

deps: debdeps pydeps

debdeps:
	@if ! command -v dpkg >/dev/null 2>&1; then \
		echo "make deps: dpkg not found (not a Debian-based system); make sure the equivalents of these are installed: $(DEB_PACKAGES)" >&2; \
		exit 0; \
	fi; \
	missing=""; \
	for p in $(DEB_PACKAGES); do \
		dpkg -s "$$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing="$$missing $$p"; \
	done; \
	missing="$${missing# }"; \
	if [ -z "$$missing" ]; then \
		echo "make deps: all installed: $(DEB_PACKAGES)"; \
		exit 0; \
	fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
		echo "make deps: missing Debian packages: $$missing" >&2; \
		echo "make deps: install them with:  sudo apt-get install -y --no-install-recommends $$missing" >&2; \
		exit 1; \
	fi; \
	echo "make deps: installing $$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update && apt-get install -y --no-install-recommends $$missing

pydeps:
	@missing=""; \
	for m in $(PY_MODULES); do python3 -c "import $$m" 2>/dev/null || missing="$$missing $$m"; done; \
	missing="$${missing# }"; \
	if [ -z "$$missing" ]; then echo "make deps: python modules present: $(PY_MODULES)"; exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
		echo "make deps: missing python modules: $$missing; install them with:  python3 -m pip install $$missing" >&2; \
		exit 1; \
	fi; \
	echo "make deps: installing python modules $$missing"; \
	python3 -m pip install --quiet $$missing

build:
	@$(call build_products,)

release:
	$(SWIFT) build -c release --product qforge $(SWIFT_FLAGS)

# Both suites always run; the target fails if either failed.
test: deps
	@status=0; \
	echo "== debug build and unit tests"; \
	{ ( $(call build_products,) ) && $(SWIFT) test --skip-build $(SWIFT_FLAGS); } || status=1; \
	echo "== release-mode tests (QForgeReleaseTests)"; \
	{ $(SWIFT) build $(RELEASE_FLAGS) --product QForgePackageTests $(SWIFT_FLAGS) \
	  && $(SWIFT) test $(RELEASE_TEST_FLAGS) --skip-build $(SWIFT_FLAGS); } || status=1; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (see above)" >&2; fi; \
	exit $$status

# One suite at a time, for development.
test-debug: deps
	@$(call build_products,)
	$(SWIFT) test --skip-build $(SWIFT_FLAGS)

test-release: deps
	$(SWIFT) build $(RELEASE_FLAGS) --product QForgePackageTests $(SWIFT_FLAGS)
	$(SWIFT) test $(RELEASE_TEST_FLAGS) --skip-build $(SWIFT_FLAGS)

demo: deps
	$(SWIFT) build -c release --product qforge $(SWIFT_FLAGS)
	"$$($(SWIFT) build -c release $(SWIFT_FLAGS) --show-bin-path)/qforge" demo

clean:
	$(SWIFT) package clean $(SWIFT_FLAGS)

# PROTOC_GEN_SWIFT=/path/to/protoc-gen-swift skips building the plugin.
proto:
	PROTOC_GEN_SWIFT="$(PROTOC_GEN_SWIFT)" scripts/generate-onnx-proto.sh
