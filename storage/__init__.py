"""The file system layer every other package reads and writes through.

Data, schemas, artifacts and models are reached with ``tf.io.gfile`` and TFX's ``io_utils`` (never
``open``/``os``/``glob``/``shutil``), so a path may be local, ``gs://`` (built into TensorFlow) or
``s3://`` (tensorflow-io, registered by :func:`enable_object_storage`). This package imports
nothing else of the project.
"""

from storage.object_storage import configure_s3_environment, enable_object_storage, is_remote

__all__ = ["configure_s3_environment", "enable_object_storage", "is_remote"]
