"""DLA and the residual-stream curve through TransformerLens' ActivationCache
(accumulated_resid / stack_head_results / logit_attrs) agree with the hand-written code they
replaced (kept below as the reference) on the exact-config TinyStories-8M random stand-in."""

from __future__ import annotations

import pytest
from standins import standin_ioi_run
import torch
from transformer_lens import ActivationCache

from mechcheck.metrics import dla
from mechcheck.metrics.logit_diff import _at_end, _direction


def _hand_read(bridge, cache, prompts, resid_end):
    """The removed hand-written reading: centre, divide by the final LayerNorm scale of the actual
    run at END, project on W_U[:, IO] - W_U[:, S]."""
    x = _at_end(cache["ln_final.hook_in"], prompts)
    x = x - x.mean(-1, keepdim=True)
    scale = (x.pow(2).mean(-1, keepdim=True) + bridge.cfg.eps).sqrt()
    centred = resid_end - resid_end.mean(-1, keepdim=True)
    return ((centred / scale) * _direction(bridge, prompts)).sum(-1)


def _hand_accumulated(bridge, cache, prompts):
    points = [_at_end(cache["blocks.0.hook_resid_pre"], prompts)]
    for layer in range(bridge.cfg.n_layers):
        points.append(_at_end(cache[f"blocks.{layer}.hook_resid_mid"], prompts))
        points.append(_at_end(cache[f"blocks.{layer}.hook_resid_post"], prompts))
    return _hand_read(bridge, cache, prompts, torch.stack(points))


def _hand_head_dla(bridge, cache, prompts):
    rows = []
    for layer in range(bridge.cfg.n_layers):
        z = _at_end(cache[f"blocks.{layer}.attn.hook_z"], prompts)
        out = torch.einsum("nhe,hed->hnd", z, bridge.W_O[layer])
        rows.append(_hand_read(bridge, cache, prompts, out))
    return torch.stack(rows)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return standin_ioi_run("roneneldan/TinyStories-8M", tmp_path_factory.mktemp("ts8m"))


def test_the_cache_is_transformer_lens_own(run):
    assert isinstance(run.cache, ActivationCache)
    # its cached final LayerNorm scale is the one the hand code recomputed from the residual
    x = run.cache["ln_final.hook_in"]
    x = x - x.mean(-1, keepdim=True)
    assert torch.equal(run.cache["ln_final.hook_scale"], (x.pow(2).mean(-1, keepdim=True) + run.bridge.cfg.eps).sqrt())


def test_residual_stream_curve_matches_the_hand_code(run):
    curve, labels = dla.accumulated(run.bridge, run.cache, run.prompts)
    hand = _hand_accumulated(run.bridge, run.cache, run.prompts)
    assert labels[:3] == ["embed", "0", "0.5"] and len(labels) == curve.shape[0] == hand.shape[0] == 17
    assert torch.equal(curve, hand)  # bit-identical (measured: max difference 0.0)
    b_U = run.bridge.b_U
    assert torch.allclose(curve[-1] + b_U[run.prompts.io] - b_U[run.prompts.s], run.ld, atol=1e-4)


def test_head_dla_matches_the_hand_code(run):
    ours = dla.head_dla(run.bridge, run.cache, run.prompts)
    hand = _hand_head_dla(run.bridge, run.cache, run.prompts)
    assert ours.shape == hand.shape == (8, 16, len(run.prompts))
    assert torch.equal(ours, hand)
