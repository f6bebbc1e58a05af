"""The generic measurements, a public API a claim calls directly (the study modules build on them).

Every function takes a TransformerLens bridge (`mc_load(name).bridge`) or what one computed and
returns tensors whose leading axes say what they index; each docstring's first line says what it
returns. They run on any architecture TransformerBridge boots and in any dtype (analysis in
float32; the architectures and dtypes tested are in the README).

- Head scores (Wang et al. 2022; thesis §3.3): `head_detection_scores`, `repeated_random_tokens`, `scores`, `corpus_vocab`
- Activations: `cached`, `final_residual` (a hook the architecture lacks: `UnsupportedMeasurement`, one line)
- Attention pattern: `attention_patterns`, `pattern_at`, `from_end`
- Logit lens: `lens_logits`, `raw_logits`
- Logit difference and DLA: `Contrast`, `logit_difference`, `logit_diff_from_resid`, `end_logits`, `accumulated`, `head_dla`
- Ablation: `zero_hook`, `logits_with`, `per_sequence_accuracy`, `correct_probability`
- Activation patching: `head_output_scores`, `patch_head_output`, `resid_patching`, `patch_edge`, `edge_scores`, `sender_scores`
"""

from __future__ import annotations

from mechcheck.metrics.ablation import logits_with, zero_hook
from mechcheck.metrics.accuracy import correct_probability, per_sequence_accuracy
from mechcheck.metrics.activations import UnsupportedMeasurement, cached, final_residual
from mechcheck.metrics.attention import from_end, pattern_at
from mechcheck.metrics.dla import accumulated, head_dla
# The submodules head_scores and logit_diff keep their names (claim files import them); their main
# functions are exported as head_detection_scores and logit_difference so as not to shadow them.
from mechcheck.metrics.head_scores import corpus_vocab, repeated_random_tokens, scores
from mechcheck.metrics.head_scores import head_scores as head_detection_scores
from mechcheck.metrics.head_scores import patterns as attention_patterns
from mechcheck.metrics.logit_diff import Contrast, end_logits, logit_diff_from_resid
from mechcheck.metrics.logit_diff import logit_diff as logit_difference
from mechcheck.metrics.logit_lens import lens_logits, raw_logits
from mechcheck.metrics.path_patching import (edge_scores, head_output_scores, patch_edge, patch_head_output,
                                             resid_patching, sender_scores)

__all__ = [
    "head_detection_scores", "repeated_random_tokens", "scores", "corpus_vocab",
    "cached", "final_residual", "UnsupportedMeasurement",
    "attention_patterns", "pattern_at", "from_end",
    "lens_logits", "raw_logits",
    "Contrast", "logit_difference", "logit_diff_from_resid", "end_logits", "accumulated", "head_dla",
    "zero_hook", "logits_with", "per_sequence_accuracy", "correct_probability",
    "head_output_scores", "patch_head_output", "resid_patching", "patch_edge", "edge_scores", "sender_scores",
]
