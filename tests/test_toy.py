"""The toy reverse+increment set-up, its checkpoint cache, and the exactness of its measurements
(the claims' positive and negative controls are declared with the claims and run by
tests/test_controls.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_toy_reverse_increment as claims  # claims/ is on pytest's pythonpath
import torch

from mechcheck.models import checkpoints
from mechcheck.models import toy
from mechcheck.studies import toy_circuit
from mechcheck.core.claim import claim_of
from mechcheck.testing import verdict_of
from mechcheck.models import CheckpointError

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent
T3 = claim_of(claims.test_t3_mlp_ablation)


def test_dataset_is_the_tutorials():
    data = toy.all_sequences()
    assert data.shape == (4**8, 17) and (data[:, 0] == toy.BOS).all()
    row = data[(data[:, 1:9] == torch.tensor([0, 1, 2, 3, 2, 0, 3, 1])).all(1)][0]
    assert row.tolist() == [4, 0, 1, 2, 3, 2, 0, 3, 1, 2, 0, 1, 3, 0, 3, 2, 1]  # the tutorial's example
    train, holdout = toy.split()
    assert train.shape[0] == 60000 and holdout.shape[0] == 5536
    assert torch.equal(toy.split()[1], holdout)  # fixed shuffle
    seen = {tuple(r) for r in train.tolist()}
    assert not any(tuple(r) in seen for r in holdout.tolist())


@pytest.fixture(scope="module")
def trained():
    """ToyRun of the shipped seed 0."""
    return {0: toy_circuit.ToyRun(toy.load(toy.find_checkpoint(toy.TrainConfig(seed=0))).bridge)}


def test_holdout_index_is_the_split():
    assert torch.equal(toy.all_sequences()[toy_circuit.holdout_index()], toy.split()[1])


def test_t5_plus1_reads_as_the_tutorial_with_the_ln_final_form_beside(trained):
    """T5.plus1's value is the raw resid @ W_U readout (the tutorial's code); the ln_final form, the
    model's own readout, is in details and reads more of the +1 on seed 0."""
    result = toy_circuit.mlp_increment(trained[0])
    d = result.details
    assert 0.0 <= result["value"] <= 1.0 and 0.0 <= d["printed_positions_only_after"] <= 1.0
    assert d["only_after_ln_final"] > result["value"]
    assert d["post_mlp_accuracy_ln_final"] > 0.99 > d["raw_post_mlp_accuracy"]


def test_t5_literal_lens_reading_is_at_chance_where_the_probe_reads_the_input(trained):
    """T5's details: on seed 0 the probe reads x_{7-i} from resid_mid while the tutorial's literal
    pre-MLP logit lens does not (inventory tut-13c)."""
    result = toy_circuit.routed_input_before_mlp(trained[0])
    assert result["value"] > 0.9 and result["pre_mlp_lens_reads_input"] < 0.4


def test_t2_reports_y0_beside_the_y1_to_y7_decision(trained):
    result = toy_circuit.reversed_attention(trained[0])
    assert result["y0_on_x7"] < 0.01  # y0 is predicted at x7's own position: read without attention
    assert result["value"] > result["mean_with_y0"]
    assert abs(sum(toy_circuit.PUBLISHED_ROWS) / 8 - 0.66) < 0.005  # the tutorial's matrix mean


def test_ablating_a_dead_neuron_does_not_drop_accuracy(trained):
    """The ablation hook zeroes only what it names: a neuron that never fires costs nothing (and T3's
    rule calls that a FAIL), the busiest neuron costs something."""
    run = trained[0]
    _, cache = run.bridge.run_with_cache(run.tokens, names_filter=lambda n: n == "blocks.0.mlp.hook_post")
    firing = (cache["blocks.0.mlp.hook_post"][:, toy_circuit.OUT] > 0).float().mean((0, 1))
    dead = int(firing.argmin())
    assert firing[dead] == 0.0
    result = toy_circuit.ablation_drop(run, "mlp.W_out", index=dead)
    assert result["value"] == 0.0
    assert verdict_of(T3, result) == "fail"
    busiest = int(firing.argmax())
    assert toy_circuit.ablation_drop(run, "mlp.W_out", index=busiest)["value"] > 0.0


def test_hook_ablation_equals_zeroing_the_weight(trained):
    run = trained[0]
    o = run.bridge.blocks[0].attn.o.original_component.weight
    backup = o.detach().clone()
    with torch.no_grad():
        o.zero_()
        direct = toy_circuit.ToyRun(run.bridge).accuracy()
        o.copy_(backup)
    hooked = run.accuracy([toy_circuit.ablation.zero_hook("attn.W_O", 0)])
    assert (direct == hooked).all()


def test_shipped_checkpoints_match_their_sha256():
    for seed in (0, 1, 2):
        path = toy.find_checkpoint(toy.TrainConfig(seed=seed))
        assert path is not None and path.parent == toy.SHIPPED_DIR
        meta = json.loads(path.with_suffix(".json").read_text())
        assert checkpoints.sha256(path) == meta["sha256"] and meta["train"]["seed"] == seed


def test_cache_trains_once_and_is_deterministic(tmp_path, monkeypatch):
    """A config that is neither shipped nor cached is trained once, cached under $MECHCHECK_CACHE
    by its key and found there next time without training; retraining it gives the same bytes.
    One epoch in batches of 6000 (10 steps, the full training loop: AdamW, clipping, cosine decay)
    keeps it to seconds; full retraining of a shipped seed is the slow test below."""
    monkeypatch.setenv("MECHCHECK_CACHE", str(tmp_path))
    cfg = toy.TrainConfig(seed=7, epochs=1, batch_size=6000)
    assert cfg.steps == 10
    assert toy.find_checkpoint(cfg) is None
    first = toy.get_checkpoint(cfg)
    assert first.parent == tmp_path / "toy"
    sha = checkpoints.sha256(first)

    def no_training(*a, **k):
        raise AssertionError("retrained although the checkpoint is cached")

    monkeypatch.setattr(toy, "train", no_training)
    assert toy.get_checkpoint(cfg) == first
    monkeypatch.undo()
    model, _ = toy.train(cfg)  # same config, same CPU -> same bytes
    again = toy.save(model, cfg, tmp_path / "again")
    assert checkpoints.sha256(again) == sha


@pytest.mark.slow
def test_full_retraining_reproduces_shipped_seed0(tmp_path, serial_threads):
    """Bytes equal to the shipped checkpoint's, trained as it was: serially (serial_threads)."""
    cfg = toy.TrainConfig(seed=0)
    model, _ = toy.train(cfg)
    path = toy.save(model, cfg, tmp_path)
    assert checkpoints.sha256(path) == json.loads(toy.find_checkpoint(cfg).with_suffix(".json").read_text())["sha256"]


def test_corrupt_and_wrong_checkpoints_are_one_clear_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file, truncated or corrupt"):
        toy.load(bad)
    from safetensors.torch import save_file

    wrong = tmp_path / "wrong.safetensors"
    save_file({"something.else": torch.zeros(3)}, str(wrong))
    with pytest.raises(CheckpointError, match="not a toy reverse\\+increment checkpoint"):
        toy.load(wrong)
    shipped = toy.find_checkpoint(toy.TrainConfig(seed=0))
    tampered = tmp_path / shipped.name
    tampered.write_bytes(shipped.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    tampered.with_suffix(".json").write_text(shipped.with_suffix(".json").read_text())
    with pytest.raises(CheckpointError, match="sha256 does not match"):
        toy.load(tampered)


def _toy_claims(pytester, *args: str):
    """(exit status, terminal output) of the shipped toy claim file run in-process (issue #24: a fresh
    interpreter cost ~10 s of imports; the plugin and the report are the same code)."""
    result = pytester.runpytest_inprocess(str(ROOT / "claims" / "test_toy_reverse_increment.py"), "-q", *args)
    return int(result.ret), result.stdout.str()


def test_claims_on_a_corrupt_override_error_in_one_line(pytester):
    tmp_path = pytester.path
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    code, stdout = _toy_claims(pytester, "--mc-model", f"mechcheck/toy-reverse-increment={bad}",
                               "--mc-report", str(tmp_path / "rep"))
    assert code == 1
    assert "CheckpointError: " in stdout and "Traceback" not in stdout
    doc = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert {r["status"] for r in doc["claims"]} == {"error"} and len(doc["claims"]) == 10  # T1-T7, T2.y0, T5.plus1, T7.whole
    assert all(r["param"] == "checkpoint" for r in doc["claims"])


def test_override_runs_the_claims_on_that_checkpoint(pytester):
    tmp_path = pytester.path
    ckpt = toy.find_checkpoint(toy.TrainConfig(seed=2))
    code, stdout = _toy_claims(pytester, "--mc-model", f"mechcheck/toy-reverse-increment={ckpt}",
                               "--mc-report", str(tmp_path / "rep"), "--mc-claims-nonfatal")
    assert code == 0, stdout[-2000:]
    doc = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert {r["model"]["sha256"] for r in doc["claims"]} == {checkpoints.sha256(ckpt)}
    status = {r["id"]: r["status"] for r in doc["claims"]}
    # T7 on seed 2: drop difference 0.005, CI about (-0.0004, 0.0096): not clear-cut (pass on the point
    # estimate, inconclusive under the three-valued rule); T7.whole likewise (gap 0.0048 vs 0.0028)
    assert status.pop("T7") in ("pass", "inconclusive") and status.pop("T7.whole") in ("pass", "inconclusive")
    # findings on the retrains, not broken checks: seed 2 reads y0 without attention (0.004 on x7) and its
    # y5 splits its attention (0.40 of the inputs' attention on x2)
    assert status.pop("T2.y0") == "fail" and status.pop("T6") == "fail"
    assert set(status.values()) == {"pass"}


def test_benchmark_holdout_accuracy(benchmark, trained):
    """pytest-benchmark: the toy's T1 measurement over the 5536 holdout sequences (one forward
    pass); timings go to the benchmark table, never into an assertion."""
    result = benchmark.pedantic(lambda: toy_circuit.ToyRun(trained[0].bridge), rounds=3, iterations=1)
    assert toy_circuit.holdout_accuracy(result)["value"] == toy_circuit.holdout_accuracy(trained[0])["value"]
