"""One module per source document's measurements (the claim files call these): the IOI thesis
(ioi, ioi_circuit), the POS-head paper (pos_heads, pos_measures), the toy tutorial (toy_circuit), the
one-layer blog posts (one_layer_heads) and the induction organism (induction_organism). Built on
mechcheck.metrics."""
