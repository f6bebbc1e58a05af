"""Stand-in set-ups shared by tests (imported by name: tests/ is on sys.path)."""

from __future__ import annotations

from pathlib import Path


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
