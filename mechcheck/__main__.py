"""`python -m mechcheck` / `mechcheck`: small commands around the suite."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train-toy": "retrain and ship the toy checkpoints (fixtures/)",
                "train-organisms": "retrain and ship the model organisms (fixtures/organisms/)"}
    if not argv or argv[0] not in commands:
        print("usage: mechcheck COMMAND ...\n" + "\n".join(f"  {k:10} {v}" for k, v in commands.items()))
        return 2
    if argv[0] == "train-toy":
        from mechcheck import toy

        toy.main(argv[1:])
    if argv[0] == "train-organisms":
        from mechcheck import organisms

        organisms.main(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
