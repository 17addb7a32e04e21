"""Every model variant (pooled, the concatenating ones, DIN target attention, model.attention, DCN-v2
cross layers) through the pipeline's executors on data whose label lives late in a sequence.

The ``late`` synthetic signal (pipeline/datasets/synthetic.py): the label depends on the last two
items of ``history`` (0-30 items), next to a shorter, uninformative ``interests`` (1-5 tokens) and
a ``target`` id. ExampleGen and Transform (per padding) run once for the file, TFX's Trainer executor once per
variant (tests/helpers/late_variants.py); each exported model then scores every raw tf.Example
of the eval split through ``serving_default``, and its AUC there is the held-out AUC.

Variants that read whole sequences in order must reach held-out AUC >= 0.9. Order-blind
encoders (mean/sum/max/attention pooling) cannot tell the last items from earlier ones (about 0.8
in memory on this data:
bench/RESULTS.md, "Which variants learn a label that lives at the end of a sequence (in memory)");
the default pooled-mean model is trained, exported and served by tests/test_pipeline_e2e.py, and
bench/model_variants.py runs every pooling on MovieLens.
"""

from __future__ import annotations

import pytest

from tests.helpers.late_variants import ORDER_AWARE_AUC, check_variant

pytestmark = pytest.mark.e2e

# (id, model section, padding of the sequences, held-out AUC gate). One file, so ExampleGen and the
# "end"-padded Transform run once for the three variants that use them: as two files (to spread
# the variants over both xdist workers) they ran twice
# (bench/RESULTS.md, "The test suite's own time").
VARIANTS = [
    ("pooled_lstm", {"type": "pooled", "pooling": "lstm"}, "end", ORDER_AWARE_AUC),
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
def test_variant_learns_trains_exports_and_serves(late_data, variant: str, model: dict, padding: str, gate: float) -> None:
    check_variant(late_data, variant, model, padding, gate)
