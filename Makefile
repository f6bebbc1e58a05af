# The README's two commands. Both create .venv on first use (torch==2.13.0 first: a CPU wheel is
# provided locally; any other torch spec pulls GBs of CUDA packages), then install mechcheck.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# make test's xdist workers (issue #24): 2 on the 2-core CI machine; TEST_WORKERS=0 runs it serially
TEST_WORKERS ?= 2

.PHONY: report test test-slow test-controls setup clean-venv

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# The claim suite -> reports/latest/{results.json,summary.md}. A claim that does not hold is a
# finding, not a broken run: exit 0 when pytest ran (status 0 or 1), non-zero otherwise.
report: setup
	rc=0; $(BIN)/pytest claims/ --mc-report reports/latest $(PYTEST_ARGS) || rc=$$?; \
	test $$rc -le 1

# mechcheck's own tests, then every claim that can run offline (real checkpoints skip with a
# reason). Claims that do not hold are shown as xfail and recorded as FAIL in reports/test;
# errors (NaN, broken model, bad input) still fail. Slow checks (-m slow) are not selected.
# --durations=15: the slowest tests, so a regression in the suite's own time shows in every run.
# -n $(TEST_WORKERS) --dist loadgroup: the tests that read one shared run stay on one worker
# (tests/conftest.py), the claims on one model too (mechcheck's scheduler); each worker gives torch
# its share of the cores. Under 6 min on a quiet 2-core machine (README "Tests and markers").
test: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest tests/ claims/ -m "not slow" --mc-claims-nonfatal \
		-n $(TEST_WORKERS) --dist loadgroup --mc-report reports/test --durations=15 $(PYTEST_ARGS)

# The slow tier: retraining the shipped checkpoints, the wheel outside the repository, the probes
# against scikit-learn, TransformerLens' path patching as the oracle, the GPT-2 sweeps' dry run and
# the organism's 81-checkpoint series (README "Tests and markers"). CI runs it after `make test`.
test-slow: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest tests/ -m "slow and not controls" -n $(TEST_WORKERS) --dist loadgroup \
		--durations=15 $(PYTEST_ARGS)

# The IOI and POS claims' controls (planted 8M / GPT-2 small stand-ins, the GPT-2 patching sweeps,
# 1M-shaped constructed models): serial, one process holds the 4 most recent control models (README
# "Tests and markers" has its time and peak memory).
test-controls: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest tests/test_controls.py -m controls --durations=15 $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
