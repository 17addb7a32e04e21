"""The concatenating variants (and DIN target attention, model.attention, DCN-v2 cross layers) through the
pipeline's executors on the late-signal data: the check tests/test_model_variants_learn.py runs, in a file of
its own so the variants run on both xdist workers (--dist loadfile keeps a file on one worker).
pytest-xdist 3.8's --dist loadgroup did not keep a marked file's tests on one worker here (tried)."""

from __future__ import annotations

import pytest

from tests.helpers.late_variants import ORDER_AWARE_AUC, check_variant

pytestmark = pytest.mark.e2e

# (id, model section, padding of the sequences, held-out AUC gate)
VARIANTS = [
    ("concat_rnn_lstm", {"type": "concat_rnn", "rnn": {"cell": "lstm"}}, "end", ORDER_AWARE_AUC),
    # Flatten reads positions: right-aligned (start-padded) sequences put the last items at fixed slots
    ("concat_flatten", {"type": "concat_flatten"}, "start", ORDER_AWARE_AUC),
    # DIN target attention is order-blind like attention pooling (pooled target_attention on this data,
    # in memory: best AUC 0.80, classes 0.30 apart, at the separation check's edge), so the LSTM
    # reads history and target attention pools interests (queried by target, another table: the
    # query is projected); DCN-v2 cross layers (low rank) sit between the concatenated vector and
    # the Dense layers; model.attention adds a vector of interests pooled by how alike the aligned
    # history items are to the target. One case covers them (a separate pooled_lstm_cross case cost
    # 160 s of suite time).
    ("concat_rnn_target_attention_cross",
     {"type": "concat_rnn", "concat": ["history"], "pooling": "target_attention", "query": "target", "cross_layers": 2,
      "cross_projection_dim": 8, "attention": [{"query": "target", "keys": "history", "values": "interests"}]},
     "end", ORDER_AWARE_AUC),
]


@pytest.mark.parametrize("variant, model, padding, gate", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_concat_variant_learns_trains_exports_and_serves(late_data, variant: str, model: dict, padding: str, gate: float) -> None:
    check_variant(late_data, variant, model, padding, gate)
