"""embedpipe's pipeline package: config, pipeline factory, runners and the CLI.

Keras 2 on purpose: TF 2.16 picks tf.keras from TF_USE_LEGACY_KERAS when TensorFlow is first
imported, so it is set here, before any module of this project imports TensorFlow.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
