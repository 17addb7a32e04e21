"""Custom TFX components and the module code TFX runs (Transform, Trainer).

Keras 2 on purpose (see pipeline/__init__.py): set before TensorFlow is imported by this package.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
