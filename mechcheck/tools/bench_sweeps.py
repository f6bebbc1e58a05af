"""`python -m mechcheck.tools.bench_sweeps`: CPU time of the GPT-2 patching sweeps (issue #24).

The four GPT-2 sweep claims of claims/test_ioi_tinystories_8m.py read three sweeps of the GPT-2
IOIRun and one of the TinyStories-8M IOIRun; each is timed here alone, on the exact-config random
stand-ins (models.save_random), as the claims compute them:

- head_patching (gpt2): I8.gpt2 and I8.fewer (every head's output patched corrupt-to-clean)
- resid_patching (gpt2): I16.gpt2 (resid_pre patched at every layer x position S2..END)
- senders (gpt2): I18.gpt2 (heads of layers 7-8 into the name movers' queries)
- head_patching (8M): I8.fewer's other model

Why a command and not timed assertions: timings belong to a machine. `--save` keeps the sweeps'
values and `--compare` reads them back (from a run of another version of the code, on the same
stand-ins and prompts) and prints the largest difference: the before/after equality check.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from mechcheck import models
from mechcheck.data import data_dir, gpt2_tokenizer, ioi_prompts
from mechcheck.studies import ioi
from mechcheck.tools.bench import standins

GPT2_NAME_MOVERS = [(9, 9), (9, 6), (10, 0)]  # as claims/test_ioi_tinystories_8m.py (I18.gpt2)
I18_SENDERS = [f"L{l}H{h}" for l in (7, 8) for h in range(12)]
MODELS = {"gpt2": "gpt2", "8m": "roneneldan/TinyStories-8M"}


def _timed(fn):
    """(value, process CPU seconds, wall seconds) of fn()."""
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn()
    return value, round(time.process_time() - cpu, 1), round(time.perf_counter() - wall, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mechcheck.tools.bench_sweeps", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--standins", type=Path, required=True, help="folder for the stand-in checkpoints")
    parser.add_argument("--names", default="John,Mary,Tom", help="IOI names (3 names = 24 prompts, 6 = 120)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is not inflated by spinning)")
    parser.add_argument("--save", type=Path, help="write the sweeps' values here (torch.save)")
    parser.add_argument("--compare", type=Path, help="values saved by another run: print the largest difference")
    parser.add_argument("--json", type=Path, help="write the timings here")
    args = parser.parse_args(argv)
    if not os.environ.get("MECHCHECK_DATA"):
        print("mechcheck.tools.bench_sweeps: set MECHCHECK_DATA (offline data: the GPT-2 tokenizer)")
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)

    standins(args.standins, tuple(MODELS.values()))
    tok = gpt2_tokenizer(data_dir())
    names = tuple(args.names.split(","))
    runs, setup = {}, {}
    for key, hub in MODELS.items():
        bridge = models.load_hf(hub, args.standins / hub.replace("/", "__"), "cpu", tok).bridge
        runs[key], setup[key], _ = _timed(lambda: ioi.IOIRun(bridge, ioi_prompts.build(tok, names=names)))
    n = len(runs["gpt2"].prompts)
    sweeps = {
        "head_patching gpt2 (I8.gpt2, I8.fewer)": lambda: runs["gpt2"].head_patching()[1],
        "resid_patching gpt2 (I16.gpt2)": lambda: runs["gpt2"].resid_patching()[1],
        "senders gpt2 (I18.gpt2)": lambda: torch.stack(list(runs["gpt2"].senders(GPT2_NAME_MOVERS, "q", I18_SENDERS).values())),
        "head_patching 8M (I8.fewer)": lambda: runs["8m"].head_patching()[1],
    }
    values, rows = {}, {}
    for label, fn in sweeps.items():
        values[label], cpu, wall = _timed(fn)
        rows[label] = {"cpu_s": cpu, "wall_s": wall}
        print(f"{label}: {cpu} s CPU, {wall} s wall", flush=True)
    total = {k: round(sum(r[k] for r in rows.values()), 1) for k in ("cpu_s", "wall_s")}
    print(f"all four: {total['cpu_s']} s CPU, {total['wall_s']} s wall ({n} prompts, {args.threads} torch thread(s); "
          f"IOIRun set-up {setup['gpt2']} s gpt2, {setup['8m']} s 8M CPU, not counted)")
    result = {"prompts": n, "names": args.names, "threads": args.threads, "sweeps": rows, "total": total,
              "setup_cpu_s": setup}
    if args.save:
        torch.save({k: v.cpu() for k, v in values.items()}, args.save)
    if args.compare:
        before = torch.load(args.compare)
        gaps = {k: (values[k].cpu() - before[k]).abs().max().item() for k in values}
        scale = {k: before[k].abs().max().item() for k in values}
        for k in values:
            print(f"max |difference| {k}: {gaps[k]:.2e} (values up to {scale[k]:.2e})")
        result["max_abs_gap"] = gaps
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
