"""embedpipe's pipeline package: the pipeline factory, the runners, the run summary and the CLI."""

import embedconfig  # noqa: F401 -- Keras 2, before TensorFlow is imported
