"""Check, when the config loads, that the chosen model variant can be built from its features.

Each transformed feature is an id tensor ``[batch, length]`` (length = ``max_length`` for
sequences, 1 for ids), embedded to ``[batch, length, embedding_dim]``. The concatenating variants
join the features named in ``model.concat`` (default: every sequence feature) on the last axis,
which needs one shared length; the other features are encoded on their own (pooled) and joined
after. These rules are checked here so a bad combination is refused with the features' names
and shapes instead of a Keras stack trace inside the Trainer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedconfig.errors import ConfigError

if TYPE_CHECKING:  # types only: config.py imports this module to run the check
    from embedconfig.config import FeatureConfig, PipelineConfig


def _shape(f: FeatureConfig) -> str:
    return f"{f.name} ({f.kind}, [batch, {f.length}, {f.embedding_dim}])"


def concat_features(config: PipelineConfig) -> list[FeatureConfig]:
    """The features joined on the last axis by a concat_* model (empty for ``pooled``)."""
    if config.model.type == "pooled":
        return []
    if config.model.concat is None:
        return [f for f in config.features if f.kind == "sequence"]
    return [config.feature(name) for name in config.model.concat]


def check_model_shapes(config: PipelineConfig) -> None:
    """Raise ConfigError naming the features and shapes when the model cannot be built."""
    model = config.model
    names = [f.name for f in config.features]
    if model.concat is not None:
        if model.type == "pooled":
            raise ConfigError("model.concat", "only concat_flatten and concat_rnn concatenate on the last axis; remove it for pooled")
        for i, name in enumerate(model.concat):
            if name not in names:
                raise ConfigError(f"model.concat[{i}]", f"{name!r} is not a feature; features: {names}")
        if len(set(model.concat)) != len(model.concat):
            raise ConfigError("model.concat", f"names a feature twice: {list(model.concat)}")
    if model.type == "pooled":
        return
    joined = concat_features(config)
    if not joined:
        raise ConfigError("model.type", f"{model.type} concatenates sequence features on the last axis, but there are none; use pooled")
    ids = [f for f in joined if f.kind == "id"]
    if ids and model.type == "concat_rnn":
        raise ConfigError(
            "model.concat",
            f"{model.type} runs an RNN over timesteps; id feature {_shape(ids[0])} has no timesteps. "
            "Leave it out of model.concat: it is then encoded on its own and joined after the RNN.",
        )
    lengths = {f.length for f in joined}
    if len(lengths) > 1:
        shapes = ", ".join(_shape(f) for f in joined)
        raise ConfigError(
            "model.concat",
            f"{model.type} concatenates embeddings on the last axis, which needs one sequence length, "
            f"but got {shapes}. Give them the same max_length or use model.type: pooled.",
        )
    if model.type == "concat_rnn":
        unmasked = [f for f in joined if not f.mask_zero]
        if unmasked:
            raise ConfigError(
                f"features[{names.index(unmasked[0].name)}].mask_zero",
                f"concat_rnn skips padding through masks; {unmasked[0].name!r} must have mask_zero: true",
            )
