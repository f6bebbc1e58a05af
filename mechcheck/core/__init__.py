"""The lowest layer: what a claim is (declaration, expectation, verdict) and the statistics a verdict
rests on. Imports nothing else of mechcheck."""
