"""Run in a fresh process by test_pipeline_e2e: load a pushed SavedModel (a local path or a
bucket's, with the standard AWS variables) and score raw inputs.

Prints JSON: probabilities from serving_default, classify and predict_raw for the same rows.
"""

import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf  # noqa: E402

from storage import enable_object_storage  # noqa: E402

enable_object_storage()  # s3:// for tf.io (gs:// is built in)

INT_FEATURES = {"history", "target"}


def example(**features) -> bytes:
    f = {}
    for k, v in features.items():
        values = v if isinstance(v, list) else [v]
        if k in INT_FEATURES:
            f[k] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        else:
            f[k] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[x.encode() for x in values]))
    return tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString()


ROWS = [
    dict(user="u1", interests=["topic_1", "topic_2"], history=[5, 17, 29], target=13, target_categories=["cat_1"]),
    # unseen user, tokens and items; empty interests; history far longer than max_length
    dict(user="nobody", interests=[], history=list(range(1000, 1100)), target=99999, target_categories=["never_seen"]),
    dict(user="u2", interests=["topic_3"], history=[], target=4, target_categories=[]),
]

model = tf.saved_model.load(sys.argv[1])
serialized = tf.constant([example(**r) for r in ROWS])
default = model.signatures["serving_default"](examples=serialized)["probability"].numpy()[:, 0]
classify = model.signatures["classify"](inputs=serialized)
pad = lambda rows, k, fill: [r[k] + [fill] * (max(len(x[k]) for x in rows) - len(r[k])) for r in rows]  # noqa: E731
raw = model.signatures["predict_raw"](
    user=tf.constant([r["user"] for r in ROWS]),
    target=tf.constant([r["target"] for r in ROWS], tf.int64),
    interests=tf.constant(pad(ROWS, "interests", "")),
    history=tf.constant(pad(ROWS, "history", -1), tf.int64),
    target_categories=tf.constant(pad(ROWS, "target_categories", "")),
)["probability"].numpy()[:, 0]
print(json.dumps({
    "signatures": sorted(model.signatures.keys()),
    "serving_default": default.tolist(),
    "classify_scores": classify["scores"].numpy().tolist(),
    "classify_classes": [[c.decode() for c in row] for row in classify["classes"].numpy()],
    "predict_raw": raw.tolist(),
}))
