"""The patching sweeps resume each patched forward pass at the patched layer from the cached
corrupted residual stream (mechcheck.metrics.path_patching.resume_residual, issue #24): their
values equal those of full forward passes to float precision, on the TinyStories-8M stand-in
(GPT-Neo, local attention) and the name-mover organism (a TransformerLens-native bridge)."""

from __future__ import annotations

import pytest
import torch

from mechcheck import models
from mechcheck.data import ioi_prompts
from mechcheck.metrics.activations import cached, final_residual
from mechcheck.models import organisms
from mechcheck.studies import ioi
from mechcheck.data import data_dir, gpt2_tokenizer
from mechcheck.metrics import path_patching as pp

RTOL = 1e-5  # largest |resumed - full| allowed, relative to the largest |value|


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-6)).item()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """IOIRuns on the 8M stand-in (names John, Mary, one template: 2 prompts) and on the trained name-mover organism."""
    tok = gpt2_tokenizer(data_dir())
    path = models.save_random("roneneldan/TinyStories-8M", tmp_path_factory.mktemp("ts8m"))
    ts8m = models.load_hf("roneneldan/TinyStories-8M", path, "cpu", tok).bridge
    nm_tok = organisms.name_mover_tokenizer()
    nm = organisms.bridge(organisms.get(organisms.name_mover_recipe()), nm_tok)
    return {"8m": ioi.IOIRun(ts8m, ioi_prompts.build(tok, names=("John", "Mary"), templates=ioi_prompts.TEMPLATES[:1])),
            "organism": ioi.IOIRun(nm, ioi_prompts.build(nm_tok, names=organisms.NM_NAMES, templates=organisms.NM_TEMPLATES))}


@pytest.mark.parametrize("model", ["8m", "organism"])
def test_resume_equals_the_full_forward_from_every_layer(runs, model):
    """No patch: resuming at any layer from the cached residual gives the run's final residual."""
    run = runs[model]
    full = final_residual(run.bridge, run.prompts.corrupted)
    for layer in range(1, run.bridge.cfg.n_layers):
        entering = run.corrupted_cache[f"blocks.{layer - 1}.hook_resid_post"]
        assert _gap(pp.resume_residual(run.bridge, entering, layer), full) < RTOL


@pytest.mark.parametrize("model", ["8m", "organism"])
def test_head_patching_sweep_equals_full_forwards(runs, model):
    run = runs[model]
    args = (run.bridge, run.prompts, run.cache, run.metric)
    resumed = run.head_patching()[1]  # what the claims read: head_output_scores with the corrupted cache
    full = pp.head_output_scores(*args)  # no corrupted cache: every patched run from the tokens
    gap = _gap(resumed, full)
    print(f"head patching [{model}]: max |resumed - full| / max |value| = {gap:.1e}")
    assert gap < RTOL


@pytest.mark.parametrize("model", ["8m", "organism"])
def test_resid_patching_sweep_equals_full_forwards(runs, model):
    run, p = runs[model], runs[model].prompts
    positions = torch.stack([p.pos_s2, p.pos_s2 + 1, p.pos_end])
    args = (run.bridge, p, run.cache, run.metric, positions)
    gap = _gap(pp.resid_patching(*args, run.corrupted_cache), pp.resid_patching(*args))
    print(f"resid patching [{model}]: {gap:.1e}")
    assert gap < RTOL


@pytest.mark.parametrize("model,receivers,component", [
    ("8m", [(2, 1), (2, 7), (3, 0)], "q"), ("8m", [(4, 2)], "v"), ("organism", [(1, 0), (1, 1)], "q")])
def test_sender_scores_equal_full_forwards(runs, model, receivers, component):
    """Path patching of every earlier component (resumed at the earliest receiver's layer) equals
    one full forward per sender (patch_edges; on the 8M stand-in for every 6th sender and the
    last, to stay fast); receivers in two layers: the later layer's q reads the resid_pre of the
    patched run."""
    run = runs[model]
    b, n = run.bridge, len(run.prompts)
    clean, corrupt = run.ld.mean(), run.ld_corrupted.mean()
    resumed = pp.sender_scores(b, run.prompts, run.cache, run.corrupted_cache, receivers, component, run.metric,
                               clean, corrupt)
    assert len(resumed) == len(pp.sender_names(b, run.cache, min(r[0] for r in receivers)))
    names = list(resumed)
    for name in (names[::6] + names[-1:] if model == "8m" else names):
        value = resumed[name]
        delta = pp.component_delta(b, run.cache, run.corrupted_cache, name)
        full = (run.metric(pp.patch_edges(b, run.prompts.corrupted, delta, receivers, component)) - corrupt) / (clean - corrupt)
        assert _gap(value, full) < RTOL, name
        assert value.shape == (n,)


def test_hooks_on_resid_pre_fire_once_when_resuming(runs):
    """An outside hook on the resume layer's hook_resid_pre (e.g. a planted effect) acts once, as in
    the full run: the resumed pass starts from resid_post of the block before, not from resid_pre."""
    run = runs["8m"]
    b, layer = run.bridge, 3
    shift = torch.randn(b.cfg.d_model, generator=torch.Generator().manual_seed(0))

    def add(x, hook):
        return x + shift

    with b.hooks(fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", add)]):
        cache = cached(b, run.prompts.corrupted, [f"blocks.{layer - 1}.hook_resid_post"])
        full = final_residual(b, run.prompts.corrupted)
        resumed = pp.resume_residual(b, cache[f"blocks.{layer - 1}.hook_resid_post"], layer)
    assert _gap(resumed, full) < RTOL
    assert _gap(final_residual(b, run.prompts.corrupted), full) > 1e-3  # the hook did act


def test_resume_beyond_the_local_window(runs):
    """GPT-Neo's local-attention layers (window 256) mask inside the block: resuming on 300 tokens
    equals the full run."""
    b = runs["8m"].bridge
    ids = torch.randint(0, 50257, (1, 300), generator=torch.Generator().manual_seed(0))
    cache = cached(b, ids, ["blocks.0.hook_resid_post"])
    assert _gap(pp.resume_residual(b, cache["blocks.0.hook_resid_post"], 1), final_residual(b, ids)) < RTOL
