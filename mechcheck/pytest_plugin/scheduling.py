"""Parallel runs: keep each (model, checkpoint) on one xdist worker, balance workers by cost, and
give each worker its own GPU.

Why this module exists: pytest-xdist 3.8's `--dist loadgroup` marks a group by rewriting
`item._nodeid` to "<nodeid>@<group>" on the worker (xdist/remote.py, its
pytest_collection_modifyitems). Since pytest 9 a node's id lives in `Node._id` (a structured
NodeId) and `Node.nodeid` is derived from it, so that write is lost: the controller receives plain
node ids, LoadGroupScheduling finds no "@", and every test becomes its own group and is spread over
the workers (hook order is not the cause: mechcheck's marks are set in pytest_itemcollected, before
any modifyitems hook). Rewriting the node id ourselves would change the ids in the report, so
instead the worker tells the controller each test's group through a small file, and
`GroupScheduling` (handed to xdist through its `pytest_xdist_make_scheduler` hook when the user
asks for `--dist loadgroup`) groups by it: same semantics as xdist's loadgroup (tests with the same
`xdist_group` marks share a worker; unmarked tests are units of their own), under pytest 8 and 9.

Cost: a group's cost is the sum of its tests' stored durations (pytest-split's `.test_durations`,
nodeid -> seconds, written by `pytest --store-durations`), a test without one counting as the mean
of the known ones (1 s when none is known). Groups are handed out heaviest first, each to the next
idle worker (longest-processing-time-first, a 4/3-approximation of the best makespan), so a worker
that drew a costly model is not also handed the cheap ones while the others idle.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import pytest

import torch

from mechcheck.core.files import atomic_write
from mechcheck.core.warning import warn
from mechcheck.models import pick_device

_DIR_KEY = "mechcheck_groups_dir"


def worker_device(option: str = "auto") -> str:
    """The device of this process's models: `pick_device(option)`, except that an xdist worker
    gwI on a host with G visible GPUs uses cuda:(I mod G) when the device is cuda (or auto and CUDA
    is available), so `-n N` spreads the models over the GPUs instead of stacking them on cuda:0."""
    device = pick_device(option)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if device != "cuda" or not worker.startswith("gw") or not worker[2:].isdigit():
        return device
    return f"cuda:{int(worker[2:]) % max(torch.cuda.device_count(), 1)}"


def share_cpu_threads() -> int | None:
    """In an xdist worker, give torch this worker's share of the CPU cores (cores // workers, at
    least 1) and return it; None outside xdist (`--mc-share-cores`). Why: each process's torch uses
    every core by default, so -n 2 on 2 cores runs 4 OpenMP threads on 2 cores, and their
    spin-waits cost more than the second worker gains. Why opt-in: torch's CPU reductions depend on
    the thread count, so values can differ from a serial run in the last digits, and a parallel
    run is promised to report exactly what a serial run does."""
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not os.environ.get("PYTEST_XDIST_WORKER") or not count.isdigit():
        return None
    threads = max(1, (os.cpu_count() or 1) // max(int(count), 1))
    torch.set_num_threads(threads)
    return threads


HEAP_UP_TO = 1 << 30  # allocations below 1 GiB come from the heap (mallopt M_MMAP_THRESHOLD)
KEEP_FREE_TOP = 1 << 30  # the heap's free top is given back to the kernel only above 1 GiB (M_TRIM_THRESHOLD)


def keep_large_blocks_on_the_heap() -> bool:
    """On glibc, serve allocations below 1 GiB from the heap, not from a fresh mmap each, and keep
    up to 1 GiB of freed heap top instead of giving it back; True when applied. Why: glibc maps
    every block above its mmap threshold (32 MiB at most, by its own adjustment) afresh and unmaps
    it when freed, and trims the heap's free top above 128 KiB, so every batch's activations (one
    layer's attention pattern of 32 texts is 34 MB) page-fault their memory in again. The POS dry
    run on 2 cores spent 29.5 s of its 72 s in the kernel, 4.2 s with the heap; the GPT-2
    stand-in's residual-patching sweep (I16.gpt2, 120 prompts) 50.6 s of 98.8 s with the mmap
    threshold alone, 0.9 s of 69.1 s with the trim threshold too (peak RSS 3.37 -> 3.29 GB). A
    freed block goes back to the heap and the next batch reuses it; results do not change (only
    where memory comes from). Left alone where the user set MALLOC_MMAP_THRESHOLD_ (theirs wins)
    and off glibc (no mallopt)."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        # -3: M_MMAP_THRESHOLD, -1: M_TRIM_THRESHOLD
        return bool(libc.mallopt(-3, ctypes.c_int(HEAP_UP_TO))) and bool(libc.mallopt(-1, ctypes.c_int(KEEP_FREE_TOP)))
    except (OSError, AttributeError):  # musl or another libc: nothing to set
        return False


def group_of(item) -> str | None:
    """The item's xdist group: its `xdist_group` mark names, joined as xdist joins them."""
    names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
    return "_".join(sorted(names)) or None


def _durations(config) -> dict[str, float]:
    """pytest-split's stored durations (its --durations-path, else <rootdir>/.test_durations)."""
    path = Path(config.getoption("durations_path", None) or Path(config.rootpath) / ".test_durations")
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        warn(f"{path}: stored durations cannot be read ({type(exc).__name__}); every test counts the same")
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # xdist not installed: Plugin's hooks never ask for a scheduler
    LoadScopeScheduling = object


class GroupScheduling(LoadScopeScheduling):
    """xdist's LoadScopeScheduling with the scope of a test read from the group map the workers
    wrote (not from the node id), and the work units handed out heaviest first."""

    def __init__(self, config, log=None, groups_dir: Path | None = None):
        super().__init__(config, log)
        self._groups_dir = groups_dir
        self._groups: dict[str, str] = {}
        self.workqueue = _CostQueue()

    def schedule(self) -> None:
        if self.collection is None:  # first call: every worker has collected
            self._groups = _read_groups(self._groups_dir)
            self.workqueue.cost_of = unit_cost(_durations(self.config))
        super().schedule()

    def _split_scope(self, nodeid: str) -> str:
        return self._groups.get(nodeid) or nodeid


class _CostQueue(OrderedDict):
    """xdist's work queue, whose `popitem(last=False)` (the next unit for an idle worker) returns
    the costliest unit left instead of the first queued. (The workers' collections cannot be
    reordered instead: xdist sends tests as indices into them.)"""

    cost_of = staticmethod(lambda unit: len(unit))

    def popitem(self, last: bool = True):
        if last or not self:
            return super().popitem(last)
        key = max(self, key=lambda k: self.cost_of(self[k]))  # max: the first of equal costs
        return key, self.pop(key)


def unit_cost(durations: dict[str, float]):
    """cost(unit) = its tests' stored durations summed; an unknown test counts as the mean of
    the known ones (1 s when none is known)."""
    default = sum(durations.values()) / len(durations) if durations else 1.0
    return lambda unit: sum(durations.get(nodeid, default) for nodeid in unit)


def _read_groups(groups_dir: Path | None) -> dict[str, str]:
    groups: dict[str, str] = {}
    if groups_dir is None:
        return groups
    for path in sorted(Path(groups_dir).glob("*.json")):
        try:
            groups.update(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            warn(f"{path}: a worker's group file cannot be read ({type(exc).__name__}); its tests keep xdist's order")
            continue
    return groups


class Plugin:
    """Registered by mechcheck.pytest_plugin.hooks; does nothing unless `--dist loadgroup` is in effect."""

    def __init__(self, config):
        self.config = config
        self.dir: Path | None = None

    def _on(self) -> bool:
        return self.config.getoption("dist", "no") == "loadgroup"

    # controller side
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node):
        if self._on():
            if self.dir is None:
                self.dir = Path(tempfile.mkdtemp(prefix="mechcheck-groups-"))
            node.workerinput[_DIR_KEY] = str(self.dir)

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config, log):
        if self._on():
            return GroupScheduling(config, log, self.dir)
        return None

    def pytest_unconfigure(self, config):
        if self.dir is not None:
            for path in self.dir.glob("*"):
                path.unlink(missing_ok=True)
            self.dir.rmdir()

    # worker side: before xdist's own collection_finish sends the ids to the controller
    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session):
        where = getattr(self.config, "workerinput", {}).get(_DIR_KEY)
        if not where:
            return
        groups = {item.nodeid: g for item in session.items if (g := group_of(item))}
        path = Path(where) / f"{self.config.workerinput['workerid']}.json"
        atomic_write(path, json.dumps(groups))
