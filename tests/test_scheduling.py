"""Parallel runs (mechcheck.pytest_plugin.scheduling): -n 2 --dist loadgroup keeps each model on one worker, so
every model loads once in total, and the report equals a serial run's."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from mechcheck.pytest_plugin import scheduling

from claim_runs import untimed  # tests/claim_runs.py: records apart from timings

pytest_plugins = ["pytester"]

MODELS = ["mechcheck/toy-reverse-increment", "roneneldan/TinyStories-1M", "roneneldan/TinyStories-8M"]

CONFTEST = '''
import os, pytest

@pytest.fixture(scope="session")
def _models():
    return {}

@pytest.fixture
def loaded(request, _models, measure):
    """A stand-in loader that logs every load (worker, model) to $MC_LOADLOG."""
    name = request.node.get_closest_marker("claim").kwargs["model"]
    if name not in _models:
        with open(os.environ["MC_LOADLOG"], "a") as f:
            f.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + " " + name + "\\n")
        _models[name] = len(name)
    return _models[name]
'''


def _claims_file(tag: str) -> str:
    lines = ["import pytest", "from mechcheck.core.claim import Source, at_least", "SRC = Source('doc.md', 'fig 1')"]
    for i, model in enumerate(MODELS):
        for j in range(2):
            lines += [f"@pytest.mark.claim(id='{tag}{i}{j}', statement='s', source=SRC, model={model!r}, "
                      f"expect=at_least(0.0))",
                      f"def test_{tag}{i}{j}(loaded, measure):",
                      f"    measure.record(loaded + {j})"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def suite(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_a=_claims_file("A"), test_b=_claims_file("B"))
    log = pytester.path / "loads.txt"
    monkeypatch.setenv("MC_LOADLOG", str(log))
    return pytester, log


def _run(pytester, log, name, *args):
    log.unlink(missing_ok=True)
    result = pytester.runpytest_subprocess("--mc-report", name, "-p", "no:randomly", *args)
    assert result.ret == 0, result.stdout.str()[-2000:]
    doc = json.loads((pytester.path / name / "results.json").read_text())
    loads = [line.split() for line in log.read_text().splitlines()]
    return doc, loads


def test_loadgroup_loads_each_model_once_and_equals_serial(suite):
    pytester, log = suite
    serial, serial_loads = _run(pytester, log, "serial")
    par, par_loads = _run(pytester, log, "par", "-n", "2", "--dist", "loadgroup")
    assert Counter(m for _, m in serial_loads) == Counter(MODELS)
    assert Counter(m for _, m in par_loads) == Counter(MODELS)  # once in total, not once per file
    assert {w for w, _ in par_loads} == {"gw0", "gw1"}  # and both workers got work
    assert len(serial["claims"]) == 12 and untimed(par["claims"]) == untimed(serial["claims"])


def test_loadfile_control_loads_a_model_on_each_worker(suite):
    """The control: by file, both workers load every model (what the scheduler is for)."""
    pytester, log = suite
    _, loads = _run(pytester, log, "par", "-n", "2", "--dist", "loadfile")
    assert Counter(m for _, m in loads) == Counter(MODELS * 2)


def test_pytest9_loses_xdists_nodeid_rewrite(pytester):
    """The cause: xdist 3.8 marks a group by assigning item._nodeid, which pytest 9 ignores."""
    item = pytester.getitem("def test_func(): pass")
    before = item.nodeid
    item._nodeid = before + "@group"
    assert item.nodeid == before


def test_cost_queue_hands_out_heaviest_unit_first():
    durations = {"a::1": 1.0, "a::2": 1.0, "b::1": 5.0, "b::2": 0.5, "c::1": 3.0}
    queue = scheduling._CostQueue()
    queue.cost_of = scheduling.unit_cost(durations)
    for scope, ids in [("A", ["a::1", "a::2"]), ("B", ["b::1", "b::2"]), ("c::1", ["c::1"]), ("D", ["d::1"])]:
        queue[scope] = dict.fromkeys(ids, False)
    # D's one test is unknown: it counts as the mean known duration (2.1 s)
    assert [queue.popitem(last=False)[0] for _ in range(4)] == ["B", "c::1", "D", "A"]


@pytest.mark.parametrize("worker,gpus,want", [("gw0", 2, "cuda:0"), ("gw3", 2, "cuda:1"), ("gw5", 4, "cuda:1"),
                                             ("", 2, "cuda"), ("master", 2, "cuda")])
def test_worker_device_round_robin(monkeypatch, worker, gpus, want):
    import torch

    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert scheduling.worker_device("auto") == want
    assert scheduling.worker_device("cpu") == "cpu"


@pytest.mark.parametrize("worker,count,cores,want", [("gw0", "2", 2, 1), ("gw1", "2", 16, 8), ("gw0", "4", 2, 1),
                                                     ("", "", 2, None), ("gw0", "", 2, None)])
def test_workers_share_the_cpu_cores(monkeypatch, worker, count, cores, want):
    """-n N --mc-share-cores: each worker's torch gets cores // N threads (at least 1); outside
    xdist, untouched."""
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", count)
    monkeypatch.setattr(scheduling.os, "cpu_count", lambda: cores)
    try:
        assert scheduling.share_cpu_threads() == want
        assert torch.get_num_threads() == (want or before)
    finally:
        torch.set_num_threads(before)


def test_unreadable_durations_file_is_a_warning_not_silence(tmp_path):
    """A damaged pytest-split durations file no longer drops out silently: MechcheckWarning says
    which file and that every test then counts the same."""
    from types import SimpleNamespace

    from mechcheck.core.warning import MechcheckWarning
    from mechcheck.pytest_plugin.scheduling import _durations

    bad = tmp_path / ".test_durations"
    bad.write_text("{not json")
    config = SimpleNamespace(getoption=lambda name, default=None: str(bad), rootpath=tmp_path)
    with pytest.warns(MechcheckWarning, match="stored durations cannot be read"):
        assert _durations(config) == {}
    missing = SimpleNamespace(getoption=lambda name, default=None: str(tmp_path / "none"), rootpath=tmp_path)
    assert _durations(missing) == {}  # no file is the normal case: no warning


def test_large_blocks_stay_on_the_heap_unless_the_user_set_malloc(monkeypatch):
    """glibc's mmap and trim thresholds are raised (the page faults of freshly mapped or trimmed
    activations cost the POS dry run 29 s of kernel time on 2 cores, the GPT-2 residual-patching
    sweep half its time); a MALLOC_MMAP_THRESHOLD_ the user set is left alone."""
    import platform
    import sys

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert scheduling.keep_large_blocks_on_the_heap() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert scheduling.keep_large_blocks_on_the_heap() is glibc
