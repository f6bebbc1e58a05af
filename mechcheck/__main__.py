"""`python -m mechcheck` / `mechcheck`: small commands around the suite."""

from __future__ import annotations

import sys

COMMANDS = {
    "train-toy": "retrain and ship the toy checkpoints (fixtures/toy_reverse_increment/)",
    "train-organisms": "retrain and ship the model organisms (fixtures/organisms/)",
    "standins": "DIR: write exact-config random checkpoints of the hub models; print the --mc-model args",
    "bench": "time the claim suite with shared vs separate forward passes, and IOI prompt scaling",
    "diff": "BASE NEW: claims whose status changed or whose value drifted; exit 1 on a regression",
    "merge": "OUT REPORT...: one report from shard reports (pytest --splits K --group i)",
    "parity": "[--devices cpu cuda]: the stand-in dry run on two devices, compared; exit 1 on a difference",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print("usage: mechcheck COMMAND ...\n" + "\n".join(f"  {k:16} {v}" for k, v in COMMANDS.items()))
        return 2
    command, rest = argv[0], argv[1:]
    # each command imports its own modules here: `mechcheck diff` and `merge` never load torch or a model
    if command == "train-toy":
        from mechcheck.models import toy  # the command's own modules only

        toy.main(rest)
    elif command == "train-organisms":
        from mechcheck.models import organisms  # the command's own modules only

        organisms.main(rest)
    elif command == "standins":
        from pathlib import Path

        from mechcheck.tools.bench import standins  # the command's own modules only
        from mechcheck.report import ReportError, check_destination  # the command's own modules only

        if len(rest) != 1:
            print("usage: mechcheck standins DIR")
            return 2
        try:
            check_destination(Path(rest[0]), "mechcheck standins", files=())
            print(" ".join(standins(Path(rest[0]))))
        except (ReportError, OSError) as exc:
            print(f"mechcheck standins: {exc}" if isinstance(exc, OSError) else str(exc), file=sys.stderr)
            return 2
    elif command == "bench":
        from mechcheck.tools.bench import main as bench  # the command's own modules only

        return bench(rest)
    elif command == "parity":
        from mechcheck.tools.parity import main as parity  # the command's own modules only

        return parity(rest)
    elif command == "diff":
        from mechcheck.report.diff import main as diff  # the command's own modules only

        return diff(rest)
    elif command == "merge":
        from mechcheck.report.merge import main as merge  # the command's own modules only

        return merge(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
