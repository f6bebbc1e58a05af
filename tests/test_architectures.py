"""The generic measurements (mechcheck.metrics) on tiny random checkpoints of several architectures
TransformerLens 4.3's TransformerBridge boots (tests/tiny_hf.py), loaded the way a claim loads them
(mechcheck.models.load_hf: unregistered name, the checkpoint's own tokenizer, compatibility mode).

Each measurement is checked against an identity that holds for any weights (random weights give
no mechanism to find, but they do give exact equalities), so a measurement that "runs" but reads
the wrong hook fails here. The README's architecture table is this file's ARCHS x MEASUREMENTS.
"""

from __future__ import annotations

import pytest
import torch

import tiny_hf
from mechcheck import metrics, models

ARCHS = list(tiny_hf.configs())
MEASUREMENTS = ["head_scores", "attention_pattern", "logit_lens", "dla", "head_ablation", "mlp_ablation",
                "head_patching", "residual_patching"]


@pytest.fixture(scope="module")
def bridge_of(tmp_path_factory):
    """bridge_of(arch): the tiny checkpoint of `arch`, built and loaded once per module."""
    loaded = {}

    def get(arch):
        if arch not in loaded:
            path = tiny_hf.save(arch, tmp_path_factory.mktemp(arch))
            loaded[arch] = models.load_hf(f"tiny/{arch}", path, "cpu", models.own_tokenizer(path))
        return loaded[arch].bridge

    return get


def _tokens(n=3, length=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    body = torch.randint(2, tiny_hf.VOCAB, (n, length - 1), generator=gen)
    return torch.cat([torch.full((n, 1), tiny_hf.BOS), body], 1)


def _contrast(corrupt_at=3):
    """Random prompts whose corrupted copy differs at one position; IO/S two fixed tokens."""
    tokens = _tokens()
    corrupted = tokens.clone()
    corrupted[:, corrupt_at] = (tokens[:, corrupt_at] + 1) % tiny_hf.VOCAB
    n = tokens.shape[0]
    return metrics.Contrast(tokens, corrupted, io=torch.full((n,), 5), s=torch.full((n,), 7),
                            pos_end=torch.full((n,), tokens.shape[1] - 1))


def _names(bridge):
    keep = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "attn.hook_z", "attn.hook_pattern")
    names = [f"blocks.{l}.{k}" for l in range(bridge.cfg.n_layers) for k in keep]
    return [n for n in names if n in bridge.hook_dict] + ["ln_final.hook_in", "ln_final.hook_scale"]


def _ld(bridge, c):
    return lambda resid: metrics.logit_diff_from_resid(bridge, resid, c)


def m_head_scores(b):
    s = metrics.head_detection_scores(b, batch=4, half=8)
    assert set(s) == {"previous_token", "duplicate_token", "induction"}
    for v in s.values():
        assert v.shape == (b.cfg.n_layers, 4, b.cfg.n_heads)
        assert torch.isfinite(v).all() and (v >= 0).all() and (v <= 1 + 1e-5).all()


def m_attention_pattern(b):
    p = metrics.attention_patterns(b, _tokens())  # [L, batch, H, q, k]
    assert torch.allclose(p.sum(-1), torch.ones(()), atol=1e-5)
    assert (p.triu(1) == 0).all()  # causal
    q = torch.arange(1, p.shape[-1])
    assert torch.equal(metrics.pattern_at(p[1], 0, q, q - 1), p[1, :, 0, q, q - 1])


def m_logit_lens(b):
    tokens = _tokens()
    last = f"blocks.{b.cfg.n_layers - 1}.hook_resid_post"
    cache = metrics.cached(b, tokens, [last])
    with torch.no_grad():
        logits = b(tokens)
    assert torch.allclose(metrics.lens_logits(b, cache[last]), logits, atol=1e-4)


def m_dla(b):
    c = _contrast()
    cache = metrics.cached(b, c.tokens, _names(b))
    curve, labels = metrics.accumulated(b, cache, c)
    heads = metrics.head_dla(b, cache, c)
    assert heads.shape == (b.cfg.n_layers, b.cfg.n_heads, len(c)) and torch.isfinite(heads).all()
    with torch.no_grad():
        ld = metrics.logit_difference(b(c.tokens), c)
    # the curve's last point plus the unembedding bias difference is the model's logit difference
    assert len(labels) == curve.shape[0]
    assert torch.allclose(curve[-1] + b.b_U[c.io] - b.b_U[c.s], ld, atol=1e-4)


def m_head_ablation(b):
    tokens = _tokens()
    clean = metrics.logits_with(b, tokens)
    one = metrics.logits_with(b, tokens, [metrics.zero_hook("attn.W_O", 1, index=0)])
    assert torch.isfinite(one).all() and not torch.allclose(one, clean)
    # ablating every head of a layer one by one is ablating the layer's attention output
    name, _ = metrics.zero_hook("attn.W_O", 1)
    each = metrics.logits_with(b, tokens, [metrics.zero_hook("attn.W_O", 1, index=h) for h in range(b.cfg.n_heads)])
    whole = metrics.logits_with(b, tokens, [metrics.zero_hook("attn.W_O", 1)])
    assert name in b.hook_dict and torch.allclose(each, whole, atol=1e-5)


def m_mlp_ablation(b):
    tokens = _tokens()
    clean = metrics.logits_with(b, tokens)
    ablated = metrics.logits_with(b, tokens, [metrics.zero_hook("mlp.W_out", 0)])
    assert torch.isfinite(ablated).all() and not torch.allclose(ablated, clean)


def m_head_patching(b):
    c = _contrast()
    clean = metrics.cached(b, c.tokens, _names(b))
    ld_clean = _ld(b, c)(clean["ln_final.hook_in"])
    same = metrics.Contrast(c.tokens, c.tokens, c.io, c.s, c.pos_end)
    # corrupted == clean: patching any head changes nothing
    values = metrics.head_output_scores(b, same, clean, _ld(b, c))
    assert torch.allclose(values, ld_clean.expand_as(values), atol=1e-4)
    values = metrics.head_output_scores(b, c, clean, _ld(b, c))
    assert values.shape == (b.cfg.n_layers, b.cfg.n_heads, len(c)) and torch.isfinite(values).all()


def m_residual_patching(b):
    c = _contrast(corrupt_at=3)
    clean = metrics.cached(b, c.tokens, _names(b))
    ld_clean = _ld(b, c)(clean["ln_final.hook_in"])
    positions = torch.tensor([[3] * len(c), [1] * len(c)])
    values = metrics.resid_patching(b, c, clean, _ld(b, c), positions)  # [L, P, n]
    # the clean residual at the one corrupted position, entering layer 0, restores the clean run
    assert torch.allclose(values[0, 0], ld_clean, atol=1e-4)
    assert torch.isfinite(values).all() and values.shape == (b.cfg.n_layers, 2, len(c))


@pytest.mark.parametrize("measurement", MEASUREMENTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_measurement_runs_on_architecture(arch, measurement, bridge_of):
    globals()[f"m_{measurement}"](bridge_of(arch))


def test_identity_records_the_processing(bridge_of, tmp_path):
    path = tiny_hf.save("llama", tmp_path / "llama")
    raw = models.load_hf("tiny/llama", path, "cpu", models.own_tokenizer(path), compat=False)
    info = raw.info()
    assert info["processing"]["compatibility_mode"] is False and info["processing"]["fold_ln"] is False
    assert info["dtype"] == info["weights_dtype"] == "float32" and "revision" not in info
    assert set(info["versions"]) == {"torch", "transformers", "transformer_lens"}


def test_an_architecture_transformer_lens_cannot_boot_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "my_new_arch", "architectures": ["MyNewArchForCausalLM"]}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(models.CheckpointError) as err:
        models.load_hf("someone/new-arch", tmp_path, "cpu", None)
    msg = str(err.value)
    assert "\n" not in msg and "'my_new_arch'" in msg and "cannot be booted by TransformerLens" in msg
    assert "LlamaForCausalLM" in msg  # what it does support


@pytest.mark.parametrize("name, ok", [("EleutherAI/pythia-70m", True), ("my-model", True),
                                      ("roneneldan/TinyStories-1M", True), ("not a hub id!", False), ("", False)])
def test_any_hub_id_or_folder_is_a_model(name, ok, tmp_path):
    if ok:
        assert models.spec(name).kind == "hf"
        assert models.spec(name).registered == (name in models.REGISTRY)
    else:
        with pytest.raises(models.UnknownModelError):
            models.spec(name)
    assert models.spec(str(tmp_path)).kind == "hf"  # a local folder


def test_an_unregistered_model_offline_skips_with_the_same_reason(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.CheckpointUnavailable, match="--mc-model EleutherAI/pythia-14m=/path/to/checkpoint"):
        models.resolve_hf("EleutherAI/pythia-14m", None)


def test_a_measurement_that_cannot_run_is_one_clear_error():
    """An MLP ablation on an attention-only model (the induction organism) has no hook to zero."""
    from mechcheck.models import organisms

    b = organisms.bridge(organisms.get(organisms.INDUCTION))
    tokens = torch.randint(0, 64, (2, 10))
    for run in (lambda: metrics.logits_with(b, tokens, [metrics.zero_hook("mlp.W_out", 0)]),
                lambda: metrics.cached(b, tokens, ["blocks.0.mlp.hook_post"])):
        with pytest.raises(metrics.UnsupportedMeasurement) as err:
            run()
        assert str(err.value).startswith("this measurement reads hook 'blocks.0.mlp.hook_post', which the ")
        assert "attention-only) does not have" in str(err.value) and "\n" not in str(err.value)
        assert isinstance(err.value, models.ModelError)  # the plugin reports it as one line


def test_public_measurements_say_what_they_return():
    """Every public measurement has a one-line docstring (mechcheck.metrics.__all__)."""
    for name in metrics.__all__:
        doc = (getattr(metrics, name).__doc__ or "").strip()
        assert doc and len(doc.splitlines()[0]) > 20, name


def test_the_hub_revision_is_read_from_the_hf_cache_path(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert models.hub_revision(tmp_path / "models--org--name" / "snapshots" / commit) == commit
    assert models.hub_revision(tmp_path / "my_checkpoint") is None
