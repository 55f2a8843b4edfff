# osbackup: the two commands of the README are `make demo` and `make test`.
# Debian's python3-swiftclient installs a /usr/bin/swift that shadows the toolchain: call it by path.
SWIFT ?= /opt/swift/usr/bin/swift
BIN_DEBUG = .build/debug/osbackup
BIN_RELEASE = .build/release/osbackup

.PHONY: all deps build test demo bench bench-peers bench-bacula bench-cloud bench-smoke release clean plugin install test-plugin

all: build

deps:
	@scripts/install-deps

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Unit, property, contract, CLI and loop-device tests, and the client against a real Keystone that
# scripts/with-keystone starts for the run (root installs python3-keystone the first time; loop devices
# need root too: those tests are skipped, and say so, otherwise); then the Bacula plugin's integration
# test with Debian's real Bacula daemons (scripts/test-bacula; root, skipped otherwise), and the plugin's
# own protocol test with a fixture backend (test-plugin; root, skipped otherwise).
test: deps plugin
	scripts/with-keystone $(SWIFT) test
	scripts/test-bacula $(BIN_DEBUG)
	@if [ "$$(id -u)" -eq 0 ]; then bacula/test/plugin-protocol-test.sh; else echo "test-plugin skipped: it needs root"; fi

# The main job on a generated disk image: Full, change, Incremental, Differential, restore, verify;
# then the emulator's demo cloud (samples/emulator/demo.yaml): doctor, openstacksdk attaches a volume to
# the proxy, Full + Incremental of its device, restore, compare, detach; cloud backups and restores;
# then real Bacula daemons (as root; skipped otherwise) back up web-1 through the plugin and restore it.
demo: build plugin
	scripts/demo-image $(BIN_DEBUG)
	scripts/demo-emulator $(BIN_DEBUG)
	scripts/demo-bacula $(BIN_DEBUG)

# Throughput, stored bytes and peak RSS on a generated 4 GiB image (see docs/benchmarks.md).
bench: release
	scripts/bench-image $(BIN_RELEASE)

# osbackup beside borg (fixed 64 KiB and default chunker), restic (compression off and auto), rsync and
# qemu-img on the same 4 GiB image and its day 2, interleaved rounds, ratios and the issue's goals printed;
# installs the peers from Debian when missing (root). See docs/benchmarks.md.
bench-peers: release
	scripts/bench-peers $(BIN_RELEASE)

# The plugin through real Bacula daemons against the plain FD backing up the same image as a file (root).
bench-bacula: release plugin
	scripts/bench-bacula $(BIN_RELEASE)

# Cloud jobs on the emulator: 8 servers x 2 volumes, --parallel 1, 2, 4, time waiting on OpenStack vs scanning.
bench-cloud: release
	scripts/bench-cloud $(BIN_RELEASE)

# Every benchmark script on tiny images, one round, on the debug build (CI runs it): they run, report and
# check their restores; the figures mean nothing. The device and Bacula parts skip without root.
SMOKE_DIR ?= /var/tmp/osbackup-bench-smoke
bench-smoke: build plugin
	scripts/bench-peers $(BIN_DEBUG) --smoke
	scripts/bench-restore $(BIN_DEBUG) --size 64M --runs 1 --device --dir $(SMOKE_DIR)/restore
	scripts/bench-image $(BIN_DEBUG) --size 64M --runs 1 --compression-only --compression none,zstd:3 \
		--sparse --sparse-empty 1G --sparse-data 0 --device --dir $(SMOKE_DIR)/image
	scripts/bench-bacula $(BIN_DEBUG) --smoke
	scripts/bench-cloud $(BIN_DEBUG) --smoke
	rm -rf $(SMOKE_DIR)

# The Bacula 9.6 File Daemon plugin (C, libc only): .build/bacula/openstack-fd.so. See bacula/README.md.
PLUGIN_CC ?= $(shell command -v gcc >/dev/null 2>&1 && echo gcc || echo /opt/swift/usr/bin/clang)
PLUGIN_CFLAGS = -shared -fPIC -O2 -Wall -Wextra -Werror -std=gnu11 -D_FILE_OFFSET_BITS=64
PLUGIN_SRC = $(wildcard bacula/plugin/*.c)
PLUGIN_HDR = $(wildcard bacula/plugin/*.h)
PLUGIN_SO = .build/bacula/openstack-fd.so

plugin: $(PLUGIN_SO)

# loadPlugin/unloadPlugin are the only exported symbols (the version script hides the rest)
$(PLUGIN_SO): $(PLUGIN_SRC) $(PLUGIN_HDR) bacula/plugin/exports.map
	@mkdir -p $(dir $@)
	$(PLUGIN_CC) $(PLUGIN_CFLAGS) -Wl,--version-script=bacula/plugin/exports.map -o $@ $(PLUGIN_SRC)

# Installs the plugin into Debian's Plugin Directory and osbackup into /usr/local/bin: the release
# build when there is one, else the debug build (the line printed says which).
install: plugin
	@if [ -x $(BIN_RELEASE) ]; then bin=$(BIN_RELEASE); elif [ -x $(BIN_DEBUG) ]; then bin=$(BIN_DEBUG); \
	  else echo "no osbackup binary: run 'make release' (or 'make build') first" >&2; exit 1; fi; \
	  install -D -m 0755 $$bin /usr/local/bin/osbackup && echo "installed $$bin as /usr/local/bin/osbackup"
	install -D -m 0644 $(PLUGIN_SO) /usr/lib/bacula/openstack-fd.so
	@echo "installed $(PLUGIN_SO) as /usr/lib/bacula/openstack-fd.so (restart bacula-fd to load it)"

# The plugin against a real Bacula 9.6 lab and a fake protocol backend (root; installs Debian's Bacula
# packages the first time). Also the last part of `make test`.
test-plugin: plugin
	bacula/test/plugin-protocol-test.sh

clean:
	rm -rf .build
