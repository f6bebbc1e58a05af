"""`python -m mechcheck bench series`: claims x checkpoints, serial vs `-n W --dist loadgroup`.

The induction organism's claims (O1, O2) run over the first 10 / 40 / 80 checkpoints of its
training run saved every 25 steps (`every25`: trained once, cached under $MECHCHECK_CACHE), given
to `--mc-series` as a series.json. For each size and mode: wall time, time per checkpoint (flat in
the number of checkpoints if nothing is quadratic), and how often a checkpoint was loaded (a small
`-p` plugin logs every organisms.load / models.load_hf call; the goal is once per checkpoint).
Writes bench_series.json / bench_series.md to --out. Why a command: timings belong to a machine,
not to a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mechcheck import models
from mechcheck.data import cache_root
from mechcheck.models import organisms, series
from mechcheck.studies import induction_organism

from mechcheck.report import atomic_write

ROOT = Path(__file__).resolve().parents[2]  # the repository (mechcheck/tools/../..)
EVERY = 25

LOADLOG = '''
import os
from mechcheck import models
from mechcheck.models import organisms

def _logged(module, attr):
    orig = getattr(module, attr)

    def load(*args, **kw):
        with open(os.environ["MECHCHECK_BENCH_LOADS"], "a") as f:
            f.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {args[0] if attr == 'load' else args[1]}\\n")
        return orig(*args, **kw)

    setattr(module, attr, load)

_logged(organisms, "load")
_logged(models, "load_hf")
'''


def every25() -> Path:
    """The induction organism's full recipe (2000 steps) saved every 25 steps: 81 checkpoints,
    trained once and cached (`complete` is written last). One thread: on this tiny model more
    threads only add synchronisation (measured 0.14 s/step with 1 thread, 1.5 s with 2 on a
    shared 2-core machine)."""
    d = cache_root() / "organisms" / f"{organisms.INDUCTION.key()}-every{EVERY}"
    if not (d / "complete").exists():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            organisms.train(organisms.INDUCTION, save_every=EVERY, series_dir=d)
        finally:
            torch.set_num_threads(threads)
        (d / "complete").write_text(f"{organisms.INDUCTION.steps // EVERY + 1} checkpoints\n")
    return d


def machine() -> str:
    """The machine the numbers belong to: CPU model and cores (timings are per machine)."""
    import platform

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def run_case(source: Path, n: int, workers: int, tmp: Path) -> dict:
    """One pytest run of the organism claims over the first n checkpoints; wall time and loads."""
    cps = series.discover(source)[:n]
    case = tmp / f"n{n}-w{workers}"
    case.mkdir(parents=True)
    (case / "series.json").write_text(json.dumps([{"step": c.step, "path": str(c.path)} for c in cps]))
    (case / "mc_bench_loads.py").write_text(LOADLOG)
    log = case / "loads.txt"
    env = {**os.environ, "MECHCHECK_BENCH_LOADS": str(log),
           "PYTHONPATH": os.pathsep.join([str(case), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-m", "pytest", "claims/test_induction_organism.py", "-q", "-p", "no:cacheprovider",
            "-p", "mc_bench_loads", "--mc-claims-nonfatal", "--mc-report", str(case / "report"),
            "--mc-series", f"{models.INDUCTION_ORGANISM}={case}"]
    if n < induction_organism.MIN_CHECKPOINTS:  # O1.phase rightly errors on a series too short to time a phase
        args += ["-k", "not phase_change"]
    if workers > 1:
        args += ["-n", str(workers), "--dist", "loadgroup", "--mc-share-cores"]
    start = time.perf_counter()
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"benchmark run failed (exit {out.returncode}):\n{out.stdout[-2000:]}")
    loads = [line.split(" ", 1)[1] for line in log.read_text().splitlines()] if log.exists() else []
    records = json.loads((case / "report" / "results.json").read_text())["claims"]
    return {"checkpoints": n, "workers": workers, "records": len(records), "wall_s": round(wall, 1),
            "per_checkpoint_s": round(wall / n, 3), "loads": len(loads), "distinct_loaded": len(set(loads))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mechcheck bench series", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    parser.add_argument("--sizes", default="10,40,80", help="numbers of checkpoints (at most 81)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        print(f"mechcheck bench series: --sizes {args.sizes!r}: expected numbers like 10,40,80")
        return 2
    source = every25()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for workers in sorted({1, args.workers}):  # --workers 1: the serial run alone
                rows.append(run_case(source, n, workers, Path(tmp)))
    for r in rows:  # marginal cost: what one more checkpoint adds, start-up (imports, workers) excluded
        first = next(s for s in rows if s["workers"] == r["workers"])
        if r["checkpoints"] > first["checkpoints"]:
            r["marginal_per_checkpoint_s"] = round((r["wall_s"] - first["wall_s"]) / (r["checkpoints"] - first["checkpoints"]), 3)
    md = ["# mechcheck benchmark: checkpoint series", "",
          f"Induction organism claims O1/O2 over its first N checkpoints (every {EVERY} steps), serial vs "
          f"-n {args.workers} --dist loadgroup --mc-share-cores, on {machine()}. Wall time includes pytest start-up (imports; "
          "with -n, starting the workers); 'marginal' is (wall - wall at the smallest N) / (N - smallest N): "
          "what one more checkpoint costs, flat if nothing is quadratic.", "",
          "| checkpoints | workers | records | wall (s) | per checkpoint (s) | marginal per checkpoint (s) | loads "
          "(distinct) | speed-up vs serial |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        serial = next(s for s in rows if s["checkpoints"] == r["checkpoints"] and s["workers"] == 1)
        md.append(f"| {r['checkpoints']} | {r['workers']} | {r['records']} | {r['wall_s']} | {r['per_checkpoint_s']} | "
                  f"{r.get('marginal_per_checkpoint_s', '—')} | {r['loads']} ({r['distinct_loaded']}) | "
                  f"{serial['wall_s'] / max(r['wall_s'], 1e-9):.2f}x |")
    atomic_write(args.out / "bench_series.json", json.dumps(rows, indent=2) + "\n")
    atomic_write(args.out / "bench_series.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0
