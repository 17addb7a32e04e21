"""A model server that speaks TF Serving's gRPC and REST APIs, for the models the pipeline pushes."""

import patches  # noqa: F401 -- Keras 2 before TensorFlow loads (patches/__init__.py)
