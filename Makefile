# interbank: the seed's targets (gen, init, broker, consume) plus demo and test.
# Every target that talks to Redis uses REDIS_URL (default redis://127.0.0.1:6379).

SHELL := /bin/bash
# Where rustup puts cargo, for a machine where scripts/setup.sh has just installed it.
export PATH := $(HOME)/.cargo/bin:$(PATH)
.SHELLFLAGS := -o pipefail -c
CARGO ?= cargo
BIN := target/release/interbank
ACCOUNTS ?= data/accounts_100.csv
WORKERS ?= 20
TRANSFERS ?= 5000

.PHONY: setup build gen init broker consume demo cluster-demo bench test faults screenshots lint clean

# Installs what is missing: a C compiler, Rust, redis-server (see the script).
setup:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --release --locked

gen: build
	$(BIN) gen --accounts 100 --seed 1
	$(BIN) gen --accounts 1000 --seed 2

init: build
	$(BIN) init --accounts $(ACCOUNTS)

broker: build
	$(BIN) broker --workers $(WORKERS) --transfers $(TRANSFERS)

consume: build
	$(BIN) consume --accounts $(ACCOUNTS)

# The whole job on a fresh machine: installs redis-server if it can, starts a private one if no
# Redis answers, builds, generates, loads, runs broker and consume together, prints the verdict.
demo: setup
	bash scripts/demo.sh

# The whole job on a private Redis Cluster of 3 masters + 3 replicas, verified (README).
cluster-demo: setup
	bash scripts/cluster_demo.sh

# Throughput and latency side by side on a private redis-server, verified (docs/BENCHMARKS.md).
bench: build
	$(BIN) bench

# Every test: unit tests, end-to-end tests and the fault suite, each against its own redis-server.
test: setup
	$(CARGO) test --locked

# The fault suite alone, printing one FAULT line of figures per scenario (docs/RELIABILITY.md).
faults: setup
	$(CARGO) test --locked --test faults -- --nocapture 2>&1 | grep -E '^(FAULT|test |test result)'

# The README's pictures: the dashboard during a run and the HTML report, in headless Chromium.
screenshots: setup
	SCREENSHOTS=$(CURDIR)/docs $(CARGO) test --locked --test dashboard the_page_follows_a_run_live

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

clean:
	$(CARGO) clean
