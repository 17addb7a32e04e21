"""A model server that speaks TF Serving's gRPC and REST APIs, for the models the pipeline pushes."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
