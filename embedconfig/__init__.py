"""The validated config every other package receives: the bottom of the import graph.

Imports nothing else of the project (tests/test_architecture.py checks the direction of every
import). Keras 2 on purpose: TF 2.16 picks tf.keras from TF_USE_LEGACY_KERAS when TensorFlow is
first imported, so it is set here, where every package's imports start.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
