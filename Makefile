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

.PHONY: install benchmark costs plots evaluate list test test-fast test-learning test-learning-ci fingerprints lint format speed clean

# a changed pyproject.toml rebuilds the venv from scratch: reinstalling a pinned package over
# another version in place can break it (mujoco 4.0.0 -> 3.17.0 leaves `import mujoco` broken)
$(STAMP): pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	@# -qq: errors only (setuptools prints a generic notice on every editable install); the
	@# byte-compiling that pip does on one core runs afterwards on all of them (~35 s less on 2;
	@# like pip's, it skips the few files of other Python versions that some packages ship)
	$(BIN)/pip install -qq --no-compile -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1 || true
	touch $(STAMP)

install: $(STAMP)

## make benchmark [SUITE=quick|standard|paper] [ALGOS=sac,rs] [ENVS=pendulum] [SEEDS=3|3-4|0,2,5] [STEPS=N]
##                [SET="sac.lr=0.001 rs.population=200"] [RUN=name] [RESUME=run-id]
##                [ARGS="--dry-run --no-ray --checkpoint-every 120 --progress-every 30 ..."]
## exit status of the script (make itself then exits 2 for any failure, so it is printed first):
## 0 every trial finished, 3 some trials failed, 130 interrupted (Ctrl-C), 2 bad input
benchmark: $(STAMP)
	@$(BIN)/python -m benchmark run --suite $(SUITE) \
	  $(if $(ALGOS),--algos $(ALGOS)) $(if $(ENVS),--envs $(ENVS)) \
	  $(if $(SEEDS),--seeds $(SEEDS)) $(if $(STEPS),--steps $(STEPS)) \
	  $(if $(SET),--set $(SET)) $(if $(RUN),--run-id $(RUN)) \
	  $(if $(RESUME),--resume $(RESUME)) $(ARGS) || { rc=$$?; case $$rc in \
	  3) echo "make benchmark: exit status 3: some trials failed (see trials.csv above)";; \
	  130) echo "make benchmark: exit status 130: interrupted; resume with the RESUME= above";; \
	  2) echo "make benchmark: exit status 2: bad input, nothing was started";; \
	  *) echo "make benchmark: exit status $$rc: python -m benchmark run stopped";; \
	  esac; exit $$rc; } >&2

## make costs RUN=<run-id>: refresh benchmark/costs.csv (the plan's estimates) from a finished run
costs: $(STAMP)
	$(if $(RUN),,$(error make costs needs RUN=<run-id> of a finished run under results/))
	$(BIN)/python -m benchmark costs $(RUN)

## make plots RUN=<run-id>: re-render figures and tables from results/<run-id>/curves.csv (no Ray)
## make plots RUN=a,b: merge runs into results/a+b/ (ARGS="--out NAME --allow-config-mismatch")
plots: $(STAMP)
	$(BIN)/python -m benchmark plots $(RUN) $(ARGS)

## make evaluate TRIAL=results/<run>/trials/<algo>__<task>__s<seed>: the agent the finished trial
##   saved (agent.pt), on 10 fresh episodes (ARGS="--episodes 20 --starts trial --explore
##   --set muzero.eval_root_noise=true")
evaluate: $(STAMP)
	$(if $(TRIAL),,$(error make evaluate needs TRIAL=results/<run>/trials/<algo>__<task>__s<seed>))
	$(BIN)/python -m benchmark evaluate $(TRIAL) $(ARGS)

list: $(STAMP)
	$(BIN)/python -m benchmark list

## test tiers (markers in pyproject.toml; measured times in the README):
## make test: unit, contract and orchestrator tests, a learning canary per plugin and the golden
##   fingerprints, on two pytest-xdist workers (WORKERS=0: one process)
WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) -m "not slow" $(ARGS)

## make test-fast: without the canaries and the learning tests
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) -m "not slow and not canary" $(ARGS)

## make test-learning: every learning test with its threshold (run before closing a learning issue)
test-learning: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow" --durations=0 $(ARGS)

## make test-learning-ci: the learning tests CI runs (marker `ci`, chosen to keep .ci/run < 40 min)
test-learning-ci: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow and ci" --durations=25 $(ARGS)

## make fingerprints: rerun every plugin's smoke run and rewrite tests/fingerprints/ on purpose
## (prints the plugins whose rows changed; FINGERPRINTS="sac rs" for some only), then again on
## AVX2 kernels on an AVX-512 host, stamping the AVX2 kind as an AVX2 host would (tests/smoke.py)
AVX2_KERNELS = ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
CPU_KIND = $(BIN)/python -c "import torch; print(torch.backends.cpu.get_cpu_capability())"
fingerprints: $(STAMP)
	$(BIN)/python tests/smoke.py --update $(FINGERPRINTS)
	if [ "$$($(CPU_KIND))" = AVX512 ]; then \
		$(AVX2_KERNELS) $(BIN)/python tests/smoke.py --update $(FINGERPRINTS); fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## speed figures (printed, not asserted)
speed: $(STAMP)
	$(BIN)/python -m benchmark.perf.ensemble
	$(BIN)/python -m benchmark.perf.sac
	$(BIN)/python -m benchmark.perf.planning
	$(BIN)/python -m benchmark.perf.mbpo
	$(BIN)/python -m benchmark.perf.mbpo --bf16
	$(BIN)/python -m benchmark.perf.ilqg
	$(BIN)/python -m benchmark.perf.pilco
	$(BIN)/python -m benchmark.perf.tdmpc2

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
