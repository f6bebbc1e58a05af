"""fp32, fp16 and bf16 checkpoints load and measure; the record states the dtype the weights were
stored in and the dtype the measurement ran in (`--mc-dtype`, mechcheck.models.run_dtype).

The tolerance stated in the README: a bf16 checkpoint measured in float32 gives values
bit-identical (torch.equal) to the same weights saved in float32 (upcasting bf16 to fp32 is exact,
and everything after it is the same float32 computation).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tiny_hf
from mechcheck import metrics, models
from mechcheck.data import data_dir, gpt2_tokenizer, ioi_prompts
from mechcheck.studies import ioi, ioi_circuit

pytest_plugins = ["pytester"]


@pytest.mark.parametrize("option, stored, device, want", [
    ("auto", "bfloat16", "cpu", "float32"), ("auto", "float16", "cpu", "float32"),
    ("auto", "bfloat16", "cuda", "bfloat16"), ("auto", "float16", "cuda:1", "float16"),
    ("auto", "float32", "cuda", "float32"), ("auto", "unknown", "cuda", "float32"),
    ("bfloat16", "float32", "cpu", "bfloat16"), ("float32", "bfloat16", "cuda", "float32"),
])
def test_run_dtype(option, stored, device, want):
    assert models.run_dtype(option, stored, device) == want


def test_an_unknown_dtype_is_one_line():
    with pytest.raises(models.ModelError, match="--mc-dtype 'fp8': expected one of auto, float32, float16, bfloat16"):
        models.run_dtype("fp8", "float32", "cpu")


def _measure(bridge):
    """Head scores, attention pattern, logit lens, DLA and head patching of one tiny model."""
    gen = torch.Generator().manual_seed(0)
    tokens = torch.cat([torch.zeros(3, 1, dtype=torch.long), torch.randint(2, tiny_hf.VOCAB, (3, 11), generator=gen)], 1)
    corrupted = tokens.clone()
    corrupted[:, 3] += 1
    c = metrics.Contrast(tokens, corrupted, torch.full((3,), 5), torch.full((3,), 7), torch.full((3,), 11))
    names = [f"blocks.{l}.{k}" for l in range(bridge.cfg.n_layers)
             for k in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "attn.hook_z", "attn.hook_pattern")]
    cache = metrics.cached(bridge, tokens, names + ["ln_final.hook_in", "ln_final.hook_scale"])
    metric = lambda resid: metrics.logit_diff_from_resid(bridge, resid, c)  # noqa: E731
    return {**metrics.head_detection_scores(bridge, batch=4, half=8),
            "lens": metrics.lens_logits(bridge, cache["blocks.1.hook_resid_post"]),
            "dla": metrics.head_dla(bridge, cache, c), "patching": metrics.head_output_scores(bridge, c, cache, metric)}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """One llama-architecture model's weights saved three ways: bf16, the same bf16 values in fp32, fp16."""
    base = tmp_path_factory.mktemp("dtypes")
    paths = {"bfloat16": tiny_hf.save("llama", base / "bf16", torch.bfloat16)}
    # the same weights in float32: the bf16 values upcast (exact)
    from transformers import AutoModelForCausalLM

    bf = AutoModelForCausalLM.from_pretrained(str(paths["bfloat16"]), dtype=torch.bfloat16)
    bf.to(torch.float32).save_pretrained(base / "fp32")
    tiny_hf.tokenizer().save_pretrained(base / "fp32")
    paths["float32"] = base / "fp32"
    paths["float16"] = tiny_hf.save("llama", base / "fp16", torch.float16)
    return paths


def _load(path, dtype="auto"):
    return models.load_hf("tiny/llama", path, "cpu", models.own_tokenizer(path), dtype=dtype)


def test_bf16_measured_in_fp32_equals_the_same_weights_in_fp32(weights):
    bf, fp = _load(weights["bfloat16"]), _load(weights["float32"])
    assert (bf.weights_dtype, bf.dtype) == ("bfloat16", "float32")
    assert (fp.weights_dtype, fp.dtype) == ("float32", "float32")
    assert bf.sha256 != fp.sha256  # different files, the same numbers
    a, b = _measure(bf.bridge), _measure(fp.bridge)
    for key in a:
        assert torch.equal(a[key], b[key]), key  # tolerance 0: bit-identical


@pytest.mark.parametrize("stored", ["float16", "bfloat16"])
@pytest.mark.parametrize("run", ["float16", "bfloat16", "float32"])
def test_every_dtype_loads_and_measures(weights, stored, run):
    loaded = _load(weights[stored], dtype=run)
    assert (loaded.weights_dtype, loaded.dtype) == (stored, run)
    assert {p.dtype for p in loaded.bridge.parameters()} == {models.DTYPES[run]}
    info = loaded.info()
    assert (info["weights_dtype"], info["dtype"]) == (stored, run)
    values = _measure(loaded.bridge)
    reference = _measure(_load(weights["float32"]).bridge)
    for key in ("previous_token", "duplicate_token", "induction"):  # attention probabilities
        assert torch.isfinite(values[key].float()).all()
        assert torch.allclose(values[key].float(), reference[key], atol=0.02), key


def test_ioi_study_runs_on_a_bf16_model(tmp_path):
    """The IOI measurements (ioi_circuit) on a bf16 model measured in bf16: before, every `.numpy()`
    of a bf16 tensor raised `TypeError: unsupported ScalarType BFloat16`. A 2-layer GPT-Neo with
    GPT-2's vocabulary (the TinyStories architecture, small enough for bf16 matmuls on a CPU)."""
    from transformers import GPTNeoConfig

    config = GPTNeoConfig(num_layers=2, hidden_size=64, num_heads=4, attention_types=[[["global", "local"], 1]],
                          window_size=256, vocab_size=50257, bos_token_id=50256, eos_token_id=50256)
    path = tiny_hf.save("gpt_neo", tmp_path / "neo-bf16", torch.bfloat16, config=config)
    tok = gpt2_tokenizer(data_dir(None))
    loaded = models.load_hf("tiny/neo", path, "cpu", tok, dtype="bfloat16")
    assert (loaded.weights_dtype, loaded.dtype) == ("bfloat16", "bfloat16")
    run = ioi.IOIRun(loaded.bridge, ioi_prompts.build(tok, names=("John", "Mary", "Tom")))
    out = [ioi_circuit.mean_logit_diff(run), ioi_circuit.correct_probability(run), ioi_circuit.largest_drop(run),
           ioi_circuit.dla_share(run, (1, 1)), ioi_circuit.head_patching(run, [(1, 1)]),
           ioi_circuit.attention_io_over_s(run, (1, 1)), ioi_circuit.resid_handover(run),
           ioi_circuit.edge_recovery(run, (1, 1), "q", (0, 2))]
    for rec in out:
        assert np.isfinite(np.asarray(rec["value"], dtype=float)).all()


CLAIM = '''
import pytest
from mechcheck.core.claim import Source, at_least
from mechcheck.metrics import head_detection_scores

@pytest.mark.claim(id="D1", model="tiny/llama", statement="runs", source=Source("doc", "here"),
                   expect=at_least(0.0))
def test_d1(mc_load, measure):
    s = head_detection_scores(mc_load("tiny/llama").bridge, batch=4, half=8)["induction"]
    measure.record(float(s.float().mean()))
'''


def test_the_record_states_both_dtypes(pytester, weights):
    pytester.makepyfile(test_d=CLAIM)
    result = pytester.runpytest("--mc-model", f"tiny/llama={weights['bfloat16']}", "--mc-dtype", "bfloat16",
                                "--mc-report", "rep", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    model = json.loads((pytester.path / "rep" / "results.json").read_text())["claims"][0]["model"]
    assert (model["weights_dtype"], model["dtype"]) == ("bfloat16", "bfloat16")
    assert model["processing"]["compatibility_mode"] is True and model["versions"]["transformer_lens"]
    result = pytester.runpytest("--mc-dtype", "fp8", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mc-dtype: invalid choice: 'fp8'*"])
