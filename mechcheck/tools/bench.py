"""`python -m mechcheck bench`: the offline claim suite timed two ways, and its growth with the
number of IOI prompts.

Why a command and not timed assertions: timings depend on the machine; what matters is the ratio
(shared forward passes vs each claim computing its own) and the growth curve, written to
bench.json / bench.md next to the other reports. Every claim file runs on exact-config random
stand-ins (models.save_random), so all measurements run, as on real checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mechcheck import models
from mechcheck.report import atomic_write

ROOT = Path(__file__).resolve().parents[2]  # the repository (mechcheck/tools/../..)
STANDINS = ("roneneldan/TinyStories-1M", "roneneldan/TinyStories-3M", "roneneldan/TinyStories-8M", "roneneldan/TinyStories-1Layer-21M", "gpt2")
SCALING_NAMES = {48: "John,Mary,Tom,Sue", 224: "John,Mary,Tom,Sue,Ben,Anna,Max,Lily",
                 960: "John,Mary,Tom,Sue,Ben,Anna,Max,Lily,Sam,Tim,Lucy,Jack,Kim,Bob,Eva,Dan"}


def standins(directory: Path, names=STANDINS) -> list[str]:
    """Write (once) a random checkpoint with the exact config of every hub model in `names`;
    return the --mc-model arguments that point the claims at them."""
    args = []
    for name in names:
        path = directory / name.replace("/", "__")
        if not (path / "config.json").exists():
            models.save_random(name, path)
        args += ["--mc-model", f"{name}={path}"]
        if name.endswith("1Layer-21M"):
            args += ["--mc-model", f"roneneldan/TinyStories-Instuct-1Layer-21M={path}"]
    return args


def prepare(command: str, devices, standins_dir: Path | None, names=STANDINS) -> tuple[list[str], list[str]]:
    """What `bench` and `parity` both need before running the suite: the devices checked
    (`models.pick_device`), the hub switched off, and the stand-ins written: (devices, the
    --mc-model arguments). Raises SystemExit(2) after one line naming `command` on bad input."""
    if not os.environ.get("MECHCHECK_DATA"):
        print(f"mechcheck {command}: set MECHCHECK_DATA (offline data) so every claim can run")
        raise SystemExit(2)
    try:
        picked = [models.pick_device(d) for d in devices]
        unknown = [n for n in names if n not in STANDINS]
        if unknown:
            raise models.ModelError(f"--models {' '.join(unknown)}: not a hub model; one of {', '.join(STANDINS)}")
    except models.ModelError as exc:
        print(f"mechcheck {command}: {exc}")
        raise SystemExit(2) from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = standins_dir or Path(tempfile.mkdtemp(prefix="mechcheck-standins-"))
    folder.mkdir(parents=True, exist_ok=True)
    return picked, standins(folder, names)


def run_suite(args: list[str], report: Path) -> tuple[float, dict, str]:
    """One pytest run of claims in a subprocess: (wall seconds, its results.json or {}, output tail)."""
    start = time.perf_counter()
    report.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **{STATS_ENV: str(report / "memory.json")})
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "mechcheck.tools.bench",
                          *args, "--mc-report", str(report)], cwd=ROOT, capture_output=True, text=True, env=env)
    seconds = round(time.perf_counter() - start, 1)
    doc = json.loads((report / "results.json").read_text()) if (report / "results.json").exists() else {}
    if out.returncode not in (0, 1):
        doc = {}
    if doc and (report / "memory.json").exists():
        doc["memory"] = json.loads((report / "memory.json").read_text())
    return seconds, doc, out.stdout[-2000:] + out.stderr[-1000:]


STATS_ENV = "MECHCHECK_BENCH_STATS"


def pytest_sessionfinish(session):
    """As a pytest plugin (-p mechcheck.tools.bench, set by run_suite): write the session's peak memory."""
    import resource

    import torch

    path = os.environ.get(STATS_ENV)
    if not path:
        return
    stats = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        stats["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    Path(path).write_text(json.dumps(stats))


def family_times(records: list[dict]) -> dict[str, float]:
    """Claim time (set-up + call) summed per claim file (one file = one source document)."""
    out: dict[str, float] = {}
    for r in records:
        family = r["nodeid"].split("::")[0].rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_")
        out[family] = round(out.get(family, 0.0) + r["timing"]["setup_s"] + r["timing"]["call_s"], 2)
    return dict(sorted(out.items()))


def _timed(args: list[str], report: Path) -> tuple[float, dict]:
    """Wall time and results of one pytest run; refuses a run in which any claim errored or none ran."""
    seconds, doc, tail = run_suite(args, report)
    counts = doc.get("counts", {})
    if counts.get("error", 1) or not counts.get("pass", 0) + counts.get("fail", 0):
        raise RuntimeError(f"benchmark run is not usable (counts {counts}):\n{tail}")
    return seconds, doc


def main(argv: list[str] | None = None) -> int:
    if argv and argv[0] == "series":  # issue13: claims x checkpoints, serial vs -n 2
        from mechcheck.tools.bench_series import main as series_bench  # issue13

        return series_bench(argv[1:])  # issue13
    parser = argparse.ArgumentParser(prog="mechcheck bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    parser.add_argument("--standins", type=Path, default=None, help="folder for the stand-in checkpoints")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="--mc-device of every run")
    args = parser.parse_args(argv)
    try:
        _, overrides = prepare("bench", [args.device], args.standins)
    except SystemExit as exc:
        return exc.code
    device = ["--mc-device", args.device]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        suite = ["claims/", "--mc-claims-nonfatal", "--mc-ioi-names", "John,Mary,Tom", *device, *overrides]
        shared, doc = _timed(suite, tmp / "shared")
        separate, _ = _timed(suite + ["--mc-no-shared-cache"], tmp / "separate")
        scaling = {}
        for n_prompts, names in SCALING_NAMES.items():
            scaling[n_prompts] = _timed([
                "claims/test_ioi_tinystories_8m.py", "-k", "i4_8m_logit or i5_8m or i6_ or i9_ or i12_",
                "--mc-claims-nonfatal", "--mc-ioi-names", names, *device,
                "--mc-model", next(a for a in overrides if a.startswith("roneneldan/TinyStories-8M="))],
                tmp / f"scale{n_prompts}")[0]
    families = family_times(doc["claims"])
    result = {"device": device_name(args.device), "suite_shared_s": shared, "suite_separate_s": separate,
              "ratio": round(separate / shared, 2), "claim_time_by_family_s": families,
              "claim_time_s": round(sum(families.values()), 1), "memory": doc.get("memory", {}),
              "ioi_scaling_s": scaling}
    memory = ", ".join(f"{k} {v}" for k, v in result["memory"].items()) or "not recorded"
    md = ["# mechcheck benchmark", "", f"Device: {result['device']}", "",
          "Full claim suite on exact-config random stand-ins (3 IOI names = 24 prompts), wall time:", "",
          f"- one shared forward pass per model and input set: {shared} s",
          f"- each claim computing its own forward passes (--mc-no-shared-cache): {separate} s",
          f"- ratio: {result['ratio']}x",
          f"- peak memory of the shared run (MB): {memory}", "",
          f"Claim time (set-up + call) of the shared run, per claim file: {result['claim_time_s']} s in all", "",
          "| claims | time (s) |", "|---|---|"] + [f"| {k} | {v} |" for k, v in families.items()] + [
          "", "IOI claims I4/I5/I6/I9/I12 on the TinyStories-8M stand-in vs number of prompts:", "",
          "| prompts | wall time (s) |", "|---|---|"] + [f"| {k} | {v} |" for k, v in scaling.items()] + [""]
    atomic_write(args.out / "bench.json", json.dumps(result, indent=2) + "\n")
    atomic_write(args.out / "bench.md", "\n".join(md))
    print("\n".join(md))
    return 0

def device_name(device: str) -> str:
    """The device as a benchmark names it: the GPU's name, or the CPU and its core count."""
    if device == "cuda":
        return f"cuda: {torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"{device}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (torch {torch.__version__})"
