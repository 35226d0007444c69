# Tessera: every command a member, a developer or CI needs.
# `make demo` and `make test` work on a fresh Debian machine with only Rust installed.

CARGO ?= cargo
FUZZ_SECONDS ?= 20
TARGET_DIR = $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

.PHONY: all setup demo test test-unit lint fmt bench fuzz-smoke reproduce clean-demo image emulated-demo emulated-test

all: test

setup:
	@scripts/ensure-deps.sh

# The whole ceremony on the embedded default: a local dev enclave, the relay and software members.
demo: setup
	$(CARGO) build --locked --release -p operator-tui -p tessera-enclave -p tessera-relay
	scripts/demo.sh

test: setup
	$(CARGO) test --locked --workspace
	scripts/with-virtual-yubikey.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	scripts/check-deploy.sh

fmt:
	$(CARGO) fmt --all

bench: setup
	$(CARGO) bench --locked --workspace

# The enclave image (EIF) from this tree's release binaries and the pinned kernel (docs/image.md);
# prints its SHA-256 and PCR0-2.
image: setup
	$(CARGO) build --locked --release -p operator-tui -p tessera-enclave -p tessera-init
	scripts/emulated/image.sh

# The ceremony of `make demo` against the image booted in an emulated Nitro enclave (QEMU's
# nitro-enclave machine over vsock and /dev/nsm); QEMU and vhost-device-vsock are built once into
# ~/.cache/tessera-emulated.
emulated-demo: setup
	$(CARGO) build --locked --release -p operator-tui -p tessera-enclave -p tessera-relay -p tessera-init
	scripts/emulated/demo.sh

# The same ceremony as CI runs it after `make test`: the member CLI and the relay are the debug
# builds the tests made; only the image's binaries (enclave, init, pivot app) are built in release.
emulated-test: setup
	$(CARGO) build --locked -p operator-tui -p tessera-relay
	$(CARGO) build --locked --release -p tessera-enclave -p tessera-init
	TESSERA=$(TARGET_DIR)/debug/tessera RELAY_BIN=$(TARGET_DIR)/debug/tessera-relay scripts/emulated/demo.sh

# Each fuzz target for FUZZ_SECONDS; fails on any crash.
fuzz-smoke:
	scripts/fuzz-smoke.sh $(FUZZ_SECONDS)

# Builds the release binaries of HEAD twice in two directories; fails unless every SHA-256 matches.
reproduce:
	scripts/reproduce.sh

clean-demo:
	rm -rf demo-out
