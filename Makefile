# osbackup: the two commands of the README are `make demo` and `make test`.
# Debian's python3-swiftclient installs a /usr/bin/swift that shadows the toolchain: call it by path.
SWIFT ?= /opt/swift/usr/bin/swift
BIN_DEBUG = .build/debug/osbackup
BIN_RELEASE = .build/release/osbackup

.PHONY: all deps build test demo bench release clean

all: build

deps:
	@scripts/install-deps

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Unit, property, contract, CLI and loop-device tests, and the client against a real Keystone that
# scripts/with-keystone starts for the run (root installs python3-keystone the first time; loop devices
# need root too: those tests are skipped, and say so, otherwise).
test: deps
	scripts/with-keystone $(SWIFT) test

# The main job on a generated disk image: Full, change, Incremental, Differential, restore, verify;
# then the emulator's demo cloud (samples/emulator/demo.yaml): doctor, openstacksdk attaches a volume to
# the proxy, Full + Incremental of its device, restore, compare, detach.
demo: build
	scripts/demo-image $(BIN_DEBUG)
	scripts/demo-emulator $(BIN_DEBUG)

# Throughput, stored bytes and peak RSS on a generated 4 GiB image (see docs/benchmarks.md).
bench: release
	scripts/bench-image $(BIN_RELEASE)

clean:
	rm -rf .build
