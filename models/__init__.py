"""The module code TFX runs by dotted path: Transform's ``preprocessing_fn`` and the Trainer's
``run_fn``, the Keras model and its serving signatures (as the taxi template's ``models/``)."""

import embedconfig  # noqa: F401 -- Keras 2, before TensorFlow is imported
