"""Every model variant through the pipeline's executors on data whose label lives late in a sequence.

The ``late`` synthetic signal (pipeline/datasets/synthetic.py): the label depends on the last two
items of ``history`` (0-30 items), next to a shorter, uninformative ``interests`` (1-5 tokens) and
a ``target`` id. ExampleGen and Transform run once per module, TFX's Trainer executor once per
variant (tests/helpers/late_variants.py); each exported model then scores every raw tf.Example
of the eval split through ``serving_default``, and its AUC there is the held-out AUC.

Variants that read whole sequences in order must reach held-out AUC >= 0.9. Order-blind
encoders (mean/sum/max/attention pooling) cannot tell the last items from earlier ones (about 0.8
in memory on this data, see bench/RESULTS.md); the default pooled-mean model is trained,
exported and served by tests/test_pipeline_e2e.py, and bench/model_variants.py runs every
pooling on MovieLens.
"""

from __future__ import annotations

import pytest

from tests.helpers.late_variants import ORDER_AWARE_AUC, check_variant

pytestmark = pytest.mark.e2e

# (id, model section, padding of the sequences, held-out AUC gate). The pooled variant here; the
# concatenating ones in tests/test_model_variants_learn_concat.py, so the two files run on both
# xdist workers (--dist loadfile keeps a file on one; pooled_lstm alone took 189-199 s in suite runs).
VARIANTS = [("pooled_lstm", {"type": "pooled", "pooling": "lstm"}, "end", ORDER_AWARE_AUC)]


@pytest.mark.parametrize("variant, model, padding, gate", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_variant_learns_trains_exports_and_serves(late_data, variant: str, model: dict, padding: str, gate: float) -> None:
    check_variant(late_data, variant, model, padding, gate)
