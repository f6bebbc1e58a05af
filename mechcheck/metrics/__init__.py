"""Measurements on a model: one concept per module (ablation, attention, logit lens, ...)."""
