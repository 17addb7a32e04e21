"""RunParameters: the per-run training settings, as a HyperParameters artifact for the Trainer.

On Kubeflow its parameters are pipeline run-time parameters (set per run, no recompiling); in a
local run they are the config's values. The Trainer reads them through ``fn_args.hyperparameters``
(the channel TFX's Tuner uses) and they override ``training.*`` of the config.
"""

import json
import os

import tensorflow as tf
from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import HyperParameters

FILE_NAME = "run_parameters.json"


@component
def RunParameters(  # noqa: N802 -- TFX component naming
    hyperparameters: OutputArtifact[HyperParameters],
    epochs: Parameter[int],
    learning_rate: Parameter[float],
) -> None:
    """Write ``{"values": {"epochs": ..., "learning_rate": ...}}`` for the Trainer."""
    if epochs < 1 or learning_rate <= 0:
        raise ValueError(f"RunParameters: epochs must be >= 1 and learning_rate > 0, got {epochs} and {learning_rate}")
    with tf.io.gfile.GFile(os.path.join(hyperparameters.uri, FILE_NAME), "w") as f:
        json.dump({"values": {"epochs": epochs, "learning_rate": learning_rate}}, f)
