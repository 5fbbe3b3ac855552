# ipvlan-bgp. Every target that needs root or packages installs what it needs
# (deps), so `make demo` and `make test` work on a fresh Debian/Ubuntu machine.

GO        ?= go
PLUGIN    ?= ipvlan-bgp
TAG       ?= latest
BUILD     := build
PLUGINDIR := $(BUILD)/plugin
PAYLOAD   := $(BUILD)/lab-payload
LAB       := integration/lab/run.sh
# The lab VM's Debian suite, one knob for demo, integration, vm-unit and smoke:
# `make integration LAB_SUITE=trixie`. Unset, each target takes its own default:
# the demo runs on trixie (Debian 13: Docker 26.1, FRR 10.3), the tests on the
# newest suite, forky (Debian testing: Docker 28.5, containerd 2.1, FRR 10.7),
# and the smoke run (the demo's steps) on SMOKE_SUITES.
LAB_SUITE    ?=
NEWEST_SUITE := forky
DEMO_SUITE   := trixie
SMOKE_SUITES := trixie bookworm
lab = LAB_SUITE=$(or $(LAB_SUITE),$(1)) $(LAB)
# Packages whose tests need a kernel with ipvlan, dummy and vlan links: they
# run again inside the lab VM with IPVLAN_BGP_REQUIRE_KERNEL=1.
VM_TEST_PKGS := driver

.PHONY: all build plugin install publish deps check unit payload vm-unit integration demo smoke bench test clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BUILD)/ipvlan-bgp ./plugin

# The plugin directory `docker plugin create` takes: config.json and a rootfs
# holding the static binary and the mount points Docker expects.
plugin: build
	rm -rf $(PLUGINDIR)
	mkdir -p $(PLUGINDIR)/rootfs/state $(PLUGINDIR)/rootfs/run/docker/plugins \
		$(PLUGINDIR)/rootfs/proc $(PLUGINDIR)/rootfs/sys $(PLUGINDIR)/rootfs/dev \
		$(PLUGINDIR)/rootfs/etc $(PLUGINDIR)/rootfs/tmp
	cp $(BUILD)/ipvlan-bgp $(PLUGINDIR)/rootfs/ipvlan-bgp
	cp config.json $(PLUGINDIR)/config.json

# On a Docker host: create and enable the plugin from the working tree,
# with SETTINGS="BGP_ASN=65001 BGP_NEIGHBORS=..." (an installed one of the
# same name is replaced, and the target says so).
install: plugin
	tools/install.sh $(PLUGIN):$(TAG) $(PLUGINDIR) $(SETTINGS)

# Build the plugin and push it to your registry for every host to install:
# make publish REGISTRY=registry.example.com:5000 [TAG=1.0]
publish: plugin
	@test -n "$(REGISTRY)" || { echo "publish: name the registry: make publish REGISTRY=host:port [TAG=$(TAG)]"; exit 1; }
	tools/publish.sh $(REGISTRY)/$(PLUGIN):$(TAG) $(PLUGINDIR)

deps:
	integration/deps.sh

check:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Unit tests and the namespace tests (real kernel, real FRR and BIRD). The
# namespace tests run without network and build the gobgp CLI and gobgpd
# (tools of go.mod) offline: `go mod download` puts every module of go.mod,
# tools included, in the module cache first.
unit: deps
	$(GO) mod download
	IPVLAN_BGP_REQUIRE_ALL=1 $(GO) test -count=1 ./...

# Everything the lab VM runs: the plugin, the kernel-dependent test binaries,
# the scenarios.
payload: plugin
	rm -rf $(PAYLOAD)
	mkdir -p $(PAYLOAD)/tests
	cp -r $(PLUGINDIR) $(PAYLOAD)/plugin
	cp -r integration/lab/scenarios $(PAYLOAD)/scenarios
	cp -r integration/lab/fabric $(PAYLOAD)/fabric
	for p in $(VM_TEST_PKGS); do \
		CGO_ENABLED=0 $(GO) test -c -o $(PAYLOAD)/tests/$$p.test ./$$p || exit 1; \
	done

# The kernel-dependent unit tests, inside the VM (newest suite by default).
vm-unit: deps payload
	$(call lab,$(NEWEST_SUITE)) --timeout 600 $(PAYLOAD) /payload/scenarios/unit.sh

# Every lab scenario, inside the VM (newest suite by default).
integration: deps payload
	@if [ -n "$(SCENARIOS)" ]; then echo "$(SCENARIOS)" >$(PAYLOAD)/scenarios/selected; fi
	$(call lab,$(NEWEST_SUITE)) --timeout 3000 $(PAYLOAD) /payload/scenarios/all.sh

# The main job: the seed's fabric, real Docker, containers reachable across hosts
# (on trixie by default).
demo: deps payload
	$(call lab,$(DEMO_SUITE)) --timeout 600 $(PAYLOAD) /payload/scenarios/demo.sh

# The demo's steps on each of SMOKE_SUITES (or on LAB_SUITE alone): the older
# engines keep a run in CI without the whole scenario suite.
smoke: deps payload
	@set -e; for s in $(or $(LAB_SUITE),$(SMOKE_SUITES)); do \
		echo "smoke: the demo's steps on $$s"; \
		LAB_SUITE=$$s $(LAB) --timeout 600 $(PAYLOAD) /payload/scenarios/demo.sh; \
	done

# The host-scale measurements (issue 13) in the VM: the plugin's calls from
# 50 callers and one container's cycle beside a baseline, and 1,000
# containers through Docker beside Docker's own ipvlan driver. The baseline
# is the plugin as of BASELINE_REF, built here. Not part of `make test`:
# about 30 minutes under emulation.
BASELINE_REF ?= 02dd4e8
bench: deps payload
	rm -rf $(BUILD)/baseline-src && mkdir -p $(BUILD)/baseline-src $(PAYLOAD)/baseline
	git archive $(BASELINE_REF) | tar -x -C $(BUILD)/baseline-src
	cd $(BUILD)/baseline-src && CGO_ENABLED=0 $(GO) build -trimpath -o $(CURDIR)/$(PAYLOAD)/baseline/ipvlan-bgp ./plugin
	git rev-parse --short $(BASELINE_REF) >$(PAYLOAD)/baseline/ref
	CGO_ENABLED=0 $(GO) test -c -o $(PAYLOAD)/tests/bench.test ./integration/bench
	$(call lab,$(NEWEST_SUITE)) --timeout 3600 --mem 6144 $(PAYLOAD) /payload/scenarios/bench.sh

# The README's test command: static checks, unit and namespace tests, then
# the VM: the kernel-dependent unit tests and every scenario on the newest
# suite, and the demo's steps on the older ones. Every scenario on trixie:
# `make integration LAB_SUITE=trixie`.
test: check unit vm-unit integration smoke

clean:
	rm -rf $(BUILD)
