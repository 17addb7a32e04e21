"""Raw records (JSONL, CSV, TFRecord) -> tf.train.Example: shared by ExampleGen, ``schema infer``,
``embedpipe predict`` and the server's REST API, without any of them importing another."""

import embedconfig  # noqa: F401 -- Keras 2, before TensorFlow is imported
