# mbrl-bench: `make benchmark` and `make test` are all a new user types (both install on first use).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

SUITE ?= quick
ALGOS ?=
ENVS ?=
SEEDS ?=
STEPS ?=
SET ?=
RUN ?=
RESUME ?=
ARGS ?=

.PHONY: install benchmark plots list test test-fast test-learning lint format speed clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make benchmark [SUITE=quick|paper] [ALGOS=sac,rs] [ENVS=pendulum] [SEEDS=3] [STEPS=N]
##                [SET="sac.lr=0.001 rs.population=200"] [RUN=name] [RESUME=run-id]
benchmark: $(STAMP)
	$(BIN)/python -m benchmark run --suite $(SUITE) \
	  $(if $(ALGOS),--algos $(ALGOS)) $(if $(ENVS),--envs $(ENVS)) \
	  $(if $(SEEDS),--seeds $(SEEDS)) $(if $(STEPS),--steps $(STEPS)) \
	  $(if $(SET),--set $(SET)) $(if $(RUN),--run-id $(RUN)) \
	  $(if $(RESUME),--resume $(RESUME)) $(ARGS)

## make plots RUN=<run-id>: re-render figures and tables from results/<run-id>/curves.csv (no Ray)
plots: $(STAMP)
	$(BIN)/python -m benchmark plots $(RUN)

list: $(STAMP)
	$(BIN)/python -m benchmark list

## the fast tests plus the bounded learning tests (what CI runs)
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not paper" $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not paper" $(ARGS)

test-learning: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow" $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## speed figures (printed, not asserted)
speed: $(STAMP)
	$(BIN)/python -m benchmark.speed_ensemble
	$(BIN)/python -m benchmark.speed_sac
	$(BIN)/python -m benchmark.speed_planning
	$(BIN)/python -m benchmark.speed_mbpo
	$(BIN)/python -m benchmark.speed_mbpo --bf16
	$(BIN)/python -m benchmark.speed_ilqg
	$(BIN)/python -m benchmark.speed_pilco

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
