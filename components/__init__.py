"""The custom TFX components: ExampleGen's executor, SchemaGate, RunParameters, ServingCanary and
the Pusher's executor. The module code they run lives in models/."""

import embedconfig  # noqa: F401 -- Keras 2, before TensorFlow is imported
