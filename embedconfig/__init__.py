"""The validated config every other package receives: the bottom of the project's own packages.

Imports nothing of the project but ``patches`` (tests/test_architecture.py checks the direction of
every import), first, so that Keras 2 is chosen before anything imports TensorFlow.
"""

import patches  # noqa: F401 -- Keras 2 before TensorFlow loads (patches/__init__.py)
