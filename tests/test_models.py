"""Model registry, checkpoint resolution and the one-line errors for bad input, on an
exact-config random TinyStories-1M checkpoint built here (no real weights can be had)."""

from __future__ import annotations

import json

import pytest
import torch

from mechcheck import models
from mechcheck.data import DataError, data_dir, gpt2_tokenizer

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def tiny_1m(tmp_path_factory):
    return models.save_random("roneneldan/TinyStories-1M", tmp_path_factory.mktemp("ts1m"))


@pytest.fixture(scope="module")
def tokenizer():
    return gpt2_tokenizer(data_dir())


def test_unknown_model_is_one_clear_error():
    with pytest.raises(models.UnknownModelError, match="unknown model 'gpt 3': neither a registered name"):
        models.spec("gpt 3")


@pytest.mark.parametrize("value, match", [
    ("roneneldan/TinyStories-1M", "expected NAME=PATH"),
    ("no pe=/tmp", "unknown model 'no pe'"),
    ("gpt2=/definitely/not/here", "no such file or directory"),
])
def test_bad_overrides(value, match):
    with pytest.raises(models.ModelError, match=match):
        models.parse_overrides([value])


def test_unreachable_checkpoint_names_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.CheckpointUnavailable) as exc:
        models.resolve_hf("roneneldan/TinyStories-1M", None)
    assert "--mc-model roneneldan/TinyStories-1M=/path/to/checkpoint" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_exact_config_checkpoint_loads(tiny_1m, tokenizer):
    loaded = models.load_hf("roneneldan/TinyStories-1M", tiny_1m, "cpu", tokenizer)
    assert (loaded.n_layers, loaded.n_heads, loaded.bridge.cfg.d_head) == (8, 16, 4)
    assert loaded.sha256 == models.sha256_of([tiny_1m / "model.safetensors"])
    logits = loaded.bridge(loaded.bridge.to_tokens("Once upon a time"))
    assert logits.shape == (1, 5, 50257) and torch.isfinite(logits).all()


def test_wrong_architecture_is_refused(tmp_path, tiny_1m):
    eight = tmp_path / "8m"
    eight.mkdir()
    cfg = dict(models.spec("roneneldan/TinyStories-8M").hf_config)
    (eight / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(models.CheckpointError, match="8 layers x d_model 256 .*TinyStories-1M is gpt_neo with 8 layers x d_model 64"):
        models.check_architecture(models.spec("roneneldan/TinyStories-1M"), eight)
    with pytest.raises(models.CheckpointError, match="no config.json"):
        models.check_architecture(models.spec("gpt2"), tmp_path)


def test_corrupt_weights_are_one_clear_error(tmp_path, tiny_1m, tokenizer):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((tiny_1m / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(models.CheckpointError, match="weights cannot be read") as exc:
        models.load_hf("roneneldan/TinyStories-1M", bad, "cpu", tokenizer)
    assert "\n" not in str(exc.value)


def test_wrong_tensor_shape_names_the_tensor(tmp_path, tiny_1m, tokenizer):
    """transformers' own message points at "the above report"; ours names the tensor and shapes."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "shape"
    shutil.copytree(tiny_1m, bad)
    state = load_file(str(bad / "model.safetensors"))
    key = "transformer.h.0.mlp.c_fc.weight"
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(models.CheckpointError, match=rf"tensor {key} has shape \[257, 64\], config.json needs \[256, 64\]") as exc:
        models.load_hf("roneneldan/TinyStories-1M", bad, "cpu", tokenizer)
    assert "\n" not in str(exc.value) and "above report" not in str(exc.value)


def test_tokenizer_from_the_data_directory():
    tok = gpt2_tokenizer(data_dir())
    assert tok("Once upon a time")["input_ids"] == [7454, 2402, 257, 640]
    with pytest.raises(DataError, match="does not exist"):
        data_dir("/no/such/dir")


CLAIM_ON_1M = '''
import pytest
from mechcheck.core.claim import Source, at_least

@pytest.mark.claim(id="P0", statement="s", source=Source("d", "w"), model="roneneldan/TinyStories-1M", expect=at_least(0))
def test_p0(mc_load, measure):
    measure.model = mc_load("roneneldan/TinyStories-1M")
    measure.record(float(measure.model.n_layers))
'''


def test_claim_on_unreachable_model_skips_with_one_reason(pytester, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makepyfile(test_p=CLAIM_ON_1M)
    result = pytester.runpytest_inprocess("--mc-report", "rep", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*checkpoint roneneldan/TinyStories-1M not reachable (HF_HUB_OFFLINE=1*--mc-model*"])
    rec = json.loads((pytester.path / "rep" / "results.json").read_text())["claims"][0]
    assert rec["status"] == "skip" and "--mc-model roneneldan/TinyStories-1M=" in rec["message"]


def test_claim_on_override_runs_and_records_the_hash(pytester, tiny_1m):
    pytester.makepyfile(test_p=CLAIM_ON_1M)
    result = pytester.runpytest_inprocess("--mc-report", "rep", "--mc-model", f"roneneldan/TinyStories-1M={tiny_1m}")
    result.assert_outcomes(passed=1)
    rec = json.loads((pytester.path / "rep" / "results.json").read_text())["claims"][0]
    assert rec["model"]["sha256"] == models.sha256_of([tiny_1m / "model.safetensors"])
    assert rec["measured"]["value"] == 8.0


def test_claim_on_wrong_architecture_errors_in_one_line(pytester, tmp_path):
    eight = models.save_random("roneneldan/TinyStories-8M", tmp_path / "8m")
    pytester.makepyfile(test_p=CLAIM_ON_1M)
    result = pytester.runpytest_inprocess("--mc-report", "rep", "--mc-model", f"roneneldan/TinyStories-1M={eight}")
    result.assert_outcomes(failed=1)  # loaded in the test body; the record says error
    result.stdout.fnmatch_lines(["CheckpointError: *a gpt_neo model with 8 layers x d_model 256*"])
    assert "Traceback" not in result.stdout.str()
    rec = json.loads((pytester.path / "rep" / "results.json").read_text())["claims"][0]
    assert rec["status"] == "error"


def _placement(bridge) -> dict[str, set[str]]:
    """Device types of every parameter and buffer reachable from the bridge, and separately of the
    wrapped HF module (bridge.original_model), which the bridge's forward pass runs through."""
    def types(module):
        return {t.device.type for t in [*module.parameters(), *module.buffers()]}

    return {"bridge": types(bridge), "hf_model": types(bridge.original_model)}


def test_weights_are_placed_on_the_requested_device(tiny_1m, tokenizer):
    """CPU-only check of GPU placement. device="meta" (placement only, no compute) stands for
    "cuda": a loader that leaves the HF model on the CPU while the bridge's config says another
    device fails here exactly as it fails on a GPU ("index is on cuda:0 ... cpu")."""
    loaded = models.load_hf("roneneldan/TinyStories-1M", tiny_1m, "meta", tokenizer, compat=False)
    assert _placement(loaded.bridge) == {"bridge": {"meta"}, "hf_model": {"meta"}}
    assert str(loaded.bridge.cfg.device) == "meta" and loaded.device == "meta"


def test_compatibility_mode_processes_weights_on_the_requested_device(tiny_1m, tokenizer, monkeypatch):
    """Compatibility mode folds weights, which TransformerLens 4.3 refuses to do on "meta" (no
    values). The equivalent check: at the moment the bridge would process its weights, every
    parameter and buffer (wrapped HF module included) is already on the requested device."""
    from transformer_lens.model_bridge import TransformerBridge

    seen = []
    monkeypatch.setattr(TransformerBridge, "enable_compatibility_mode", lambda self, *a, **k: seen.append(_placement(self)))
    models.load_hf("roneneldan/TinyStories-1M", tiny_1m, "meta", tokenizer, compat=True)
    assert seen == [{"bridge": {"meta"}, "hf_model": {"meta"}}]


def test_cuda_without_cuda_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(models.ModelError, match="^--mc-device cuda: no CUDA device is available here; use --mc-device cpu or auto$"):
        models.pick_device("cuda")
    assert models.pick_device("auto") == "cpu"


OOM_CLAIMS = '''
import pytest, torch
from mechcheck.core.claim import Source, at_least

@pytest.mark.claim(id="X1", statement="s", source=Source("d", "w"), model="gpt2", expect=at_least(0))
def test_x1(measure):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\\nmore lines")

@pytest.mark.claim(id="X2", statement="s", source=Source("d", "w"), model="gpt2", expect=at_least(0))
def test_x2(measure):
    measure.record(1.0)
'''


def test_out_of_memory_is_the_claims_error_in_one_line(pytester):
    """A device out-of-memory in one claim (raised here by a fake measurement) is that claim's
    error, one line naming the fixes; the run goes on to the next claim."""
    pytester.makepyfile(test_oom=OOM_CLAIMS)
    result = pytester.runpytest_inprocess("--mc-report", "rep")
    result.assert_outcomes(failed=1, passed=1)
    assert "Traceback" not in result.stdout.str()
    result.stdout.fnmatch_lines(["OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB; run on the CPU "
                                 "(--mc-device cpu) or with a smaller prompt set*"])
    recs = {r["id"]: r for r in json.loads((pytester.path / "rep" / "results.json").read_text())["claims"]}
    assert recs["X1"]["status"] == "error" and "--mc-device cpu" in recs["X1"]["message"]
    assert "\n" not in recs["X1"]["message"] and recs["X2"]["status"] == "pass"
