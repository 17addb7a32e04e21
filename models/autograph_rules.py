"""Keep AutoGraph out of tf_keras' own code, as newer TensorFlow does.

TF 2.16's AutoGraph leaves ``keras`` and ``tensorflow`` unconverted
(tensorflow/python/autograph/core/config.py) but not ``tf_keras``, the package Keras 2 moved to.
So the first ``fit``/``evaluate``/``predict`` of every process re-parses and converts tf_keras'
training loop, layers and metrics: 947 functions for a three-embedding model, measured with
cProfile (2026-12-01, 2 cores). Later TensorFlow adds ``DoNotConvert("tf_keras")`` to the same
list; this backports that one rule. Measured on the same small model and data: first epoch
29.5 s -> 2.0 s, later epochs unchanged (0.18 / 0.21 s). Our own layers are still converted.
"""

from __future__ import annotations

from tensorflow.python.autograph.core import config as autograph_config

TF_KERAS = "tf_keras"


def exclude_tf_keras_from_autograph() -> None:
    """Add TensorFlow's later ``DoNotConvert("tf_keras")`` rule once (idempotent)."""
    rules = autograph_config.CONVERSION_RULES
    if any(isinstance(rule, autograph_config.DoNotConvert) and rule.matches(TF_KERAS) for rule in rules):
        return
    autograph_config.CONVERSION_RULES = rules + (autograph_config.DoNotConvert(TF_KERAS),)
