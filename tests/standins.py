"""Stand-in set-ups shared by tests (imported by name: tests/ is on sys.path)."""

from __future__ import annotations

from pathlib import Path

from claim_runs import Once, made_once


def standin_ioi_run(name: str, folder: Path):
    """An IOIRun (names John, Mary, Tom) on the exact-config random stand-in of hub model `name`,
    written to `folder`: the set-up of the DLA and path-patching oracle tests."""
    from mechcheck.data import ioi_prompts
    from mechcheck.studies import ioi
    from mechcheck import models
    from mechcheck.data import data_dir, gpt2_tokenizer

    tok = gpt2_tokenizer(data_dir())
    bridge = models.load_hf(name, models.save_random(name, folder), "cpu", tok).bridge
    return ioi.IOIRun(bridge, ioi_prompts.build(tok, names=("John", "Mary", "Tom")))


class Standins:
    """Exact-config random stand-ins (models.save_random, seeded) of the hub models in one folder,
    each written once at first use (mechcheck.tools.bench.standins, as `mechcheck standins` does):
    the session's `standins` fixture (tests/conftest.py)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._args = Once(self._write)

    def _write(self, name: str) -> tuple[str, ...]:
        from mechcheck.tools.bench import standins

        made_once(self.folder / name.replace("/", "__"), lambda _: standins(self.folder, (name,)))
        return tuple(standins(self.folder, (name,)))  # written: now only the arguments

    def args(self, *names: str) -> list[str]:
        """The --mc-model arguments pointing the claims at the stand-ins of `names`."""
        return [a for n in names for a in self._args(n)]
