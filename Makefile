# procshot: the targets users and CI run. `make help` lists them.

CARGO ?= cargo
PROCSHOT := target/release/procshot

.PHONY: help build plugin demo test test-node test-go-matrix test-deps lint bench crds e2e clean

help:
	@echo "make demo   build, capture a bundled leaking process (3 samples) and print its findings"
	@echo "make test   install what the tests need, then lint and run every test (needs root)"
	@echo "make test-node  only the node test bed: capture pods run by containerd through a kubelet stand-in (needs root)"
	@echo "make test-go-matrix  the memory reader of goroutines on every Go version x every build kind (default, -s -w, PIE, cgo, cgo+PIE+stripped)"
	@echo "make bench  procshot side by side with lsof, ls and a C floor (20,000 fds), with the AWS CLI (1 GiB upload to Garage), with curl (100,000 goroutines), from memory against pprof (100,000 goroutines), with gdb and eu-stack (stacks of 10-1,000 threads), and with gcore (core dumps of 256 MiB and 1 GiB)"
	@echo "make build  build the release binary ($(PROCSHOT))"
	@echo "make plugin build the kubectl plugin ($(PLUGIN)) and its krew archive ($(PLUGIN_ARCHIVE))"
	@echo "make crds   regenerate crds/debugsession.yaml from the operator's types"
	@echo "make image  build the agent, operator and e2e fixture images (needs Docker)"
	@echo "make e2e    run the whole flow on a kind cluster (needs Docker and kind)"

build:
	$(CARGO) build --release --locked -p procshot

# The kubectl plugin: kubectl runs any `kubectl-procshot` on PATH as `kubectl procshot`.
PLUGIN := target/release/kubectl-procshot
PLUGIN_PLATFORM := $(shell uname -s | tr A-Z a-z)-$(shell uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')
PLUGIN_ARCHIVE := target/plugin/kubectl-procshot-$(PLUGIN_PLATFORM).tar.gz

plugin:
	$(CARGO) build --release --locked -p kubectl-procshot
	mkdir -p target/plugin
	tar -czf $(PLUGIN_ARCHIVE) -C target/release kubectl-procshot
	@sha256sum $(PLUGIN_ARCHIVE)
	@echo "put $(PLUGIN) on PATH (kubectl procshot --help), or: kubectl krew install --manifest=operator/kubectl-procshot/krew/procshot.yaml --archive=$(PLUGIN_ARCHIVE)"

demo: build
	scripts/demo.sh

test-deps:
	scripts/install-test-deps.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

test: test-deps lint
	scripts/run-tests.sh

test-node: test-deps
	exports=$$(scripts/build-node-testbed.sh) && eval "$$exports" && \
		$(CARGO) test --locked -p procshot-node-testbed

# `make test` checks each Go version with two build kinds; this checks all of them
# (about 40 fixture builds: slow the first time, cached in ~/.cache/procshot/go-build).
test-go-matrix: test-deps
	PROCSHOT_GO_MATRIX=full $(CARGO) test --locked -p procshot --test gomem

bench: build
	scripts/install-bench-deps.sh
	PROCSHOT_BIN=$(PROCSHOT) bash sidecar/benches/fd_table.sh
	PROCSHOT_BIN=$(PROCSHOT) bash sidecar/benches/upload.sh
	PROCSHOT_BIN=$(PROCSHOT) bash sidecar/benches/goroutines.sh
	PROCSHOT_BIN=$(PROCSHOT) bash sidecar/benches/gomem.sh
	PROCSHOT_BIN=$(PROCSHOT) bash sidecar/benches/stacks.sh
	PROCSHOT_BIN=$(PROCSHOT) bash sidecar/benches/core.sh

crds:
	$(CARGO) run --locked -q -p procshot-operator -- crd > crds/debugsession.yaml
	cp crds/debugsession.yaml charts/procshot/files/debugsession.yaml
	$(CARGO) run --locked -q -p procshot-operator -- reference > docs/debugsession-reference.md

e2e:
	scripts/e2e-kind.sh

clean:
	$(CARGO) clean

# Container images (Dockerfile): the agent run by capture pods, the operator, and the
# leaking fixture `make e2e` captures. Tagged with the workspace version.
IMAGE_REPO ?= ghcr.io/procshot
VERSION ?= $(or $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1),0.1.0)
DOCKER ?= docker

.PHONY: image

image:
	$(DOCKER) build --target agent -t $(IMAGE_REPO)/procshot:$(VERSION) .
	$(DOCKER) build --target operator -t $(IMAGE_REPO)/procshot-operator:$(VERSION) .
	$(DOCKER) build --target e2e-fixture -t $(IMAGE_REPO)/procshot-e2e-fixture:$(VERSION) .
