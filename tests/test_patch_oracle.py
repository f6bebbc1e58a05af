"""TransformerLens' direct path patching (get_act_patch_direct_path, Wang et al. 2022) as the
oracle for our edge patching (mechcheck.metrics.path_patching.patch_edge) on the exact-config
GPT-2 small random stand-in, where the bridge exposes the pre-Q/K/V fork TL needs."""

from __future__ import annotations

import pytest
from standins import standin_ioi_run
import torch
from transformer_lens.patching import get_act_patch_direct_path

from mechcheck.metrics import logit_diff, path_patching

SENDER = (9, 3)  # a late sender keeps TL's sweep short: 2 layers x 12 receiver heads


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return standin_ioi_run("gpt2", tmp_path_factory.mktemp("gpt2"))


@pytest.mark.slow  # GPT-2 small forward passes on CPU: minutes on a shared machine
@pytest.mark.parametrize("component", ["q", "v"])
def test_patch_edge_matches_transformer_lens_direct_path(run, component):
    b, p = run.bridge, run.prompts
    oracle = get_act_patch_direct_path(
        b, p.corrupted, run.cache, run.corrupted_cache,
        lambda logits: logit_diff.logit_diff(logits, p).mean(), *SENDER, component=component, verbose=False)
    delta = path_patching.sender_delta(b, run.cache, run.corrupted_cache, *SENDER)
    ours = torch.zeros_like(oracle)
    for layer in range(SENDER[0] + 1, b.cfg.n_layers):
        for head in range(b.cfg.n_heads):
            ours[layer, head] = run.metric(path_patching.patch_edge(b, p.corrupted, delta, (layer, head), component)).mean()
    gap = (ours - oracle).abs().max().item()
    print(f"max abs(patch_edge - TL direct path) [{component}] = {gap:.2e}")
    assert gap < 1e-5  # float32: TL runs full logits, we read two unembedding columns
    assert not torch.allclose(ours[SENDER[0] + 1 :], run.ld_corrupted.mean())  # the patch moved the metric
