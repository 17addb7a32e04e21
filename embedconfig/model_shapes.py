"""Check, when the config loads, that the chosen model variant can be built from its features.

Each transformed feature is an id tensor ``[batch, length]`` (length = ``max_length`` for
sequences, 1 for ids), embedded to ``[batch, length, embedding_dim]``. The concatenating variants
join the features named in ``model.concat`` (default: every sequence feature) on the last axis,
which needs one shared length; the other features are encoded on their own (pooled) and joined
after. ``target_attention`` pooling needs a query, an id feature (``features[i].query``, else
``model.query``), and so does each ``model.attention`` entry, whose keys and values sequences
must line up step by step; DCN-v2 cross layers (``model.cross_layers``) work on the joined vector, whose
width :func:`feature_vector_width` gives. These rules are checked here so a bad combination is
refused with the features' names and shapes instead of a Keras stack trace inside the Trainer.
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


def pooling_of(f: FeatureConfig, config: PipelineConfig) -> str:
    """How a feature outside ``model.concat`` is encoded: its own pooling, else ``model.pooling``;
    an id feature (one value) is always its embedding, a mean over one step."""
    if f.kind == "id":
        return "mean"
    return f.pooling or config.model.pooling


def query_of(f: FeatureConfig, config: PipelineConfig) -> FeatureConfig:
    """The id feature whose embedding queries ``f``'s target_attention (validated at load)."""
    return config.feature(f.query or config.model.query or "")


def feature_vector_width(config: PipelineConfig) -> int:
    """Width of the concatenated feature vector the cross layers and the hidden layers read."""
    joined = concat_features(config)
    width = 0
    if joined:
        flattened = config.model.type == "concat_flatten"
        width += joined[0].length * sum(f.embedding_dim for f in joined) if flattened else config.model.rnn.units
    names = {f.name for f in joined}
    for f in config.features:
        if f.name not in names:
            width += config.model.rnn.units if pooling_of(f, config) in ("lstm", "gru") else f.embedding_dim
    return width + sum(config.feature(a.values_feature).embedding_dim for a in config.model.attention)


def _check_query(config: PipelineConfig, name: str, field: str) -> None:
    ids = [f.name for f in config.features if f.kind == "id"]
    if name not in [f.name for f in config.features]:
        raise ConfigError(field, f"{name!r} is not a feature; the query is an id feature: {ids}")
    if config.feature(name).kind != "id":
        raise ConfigError(field, f"{name!r} is a sequence; the query is the embedding of one id (the target item), one of {ids}")


def _check_target_attention(config: PipelineConfig) -> None:
    """Every feature pooled with target_attention has an id feature as its query; no query is unused."""
    model = config.model
    joined = {f.name for f in concat_features(config)}
    if model.query is not None:
        _check_query(config, model.query, "model.query")
    default_users = 0  # features that take model.query
    for i, f in enumerate(config.features):
        if f.pooling == "target_attention" and f.kind == "id":
            raise ConfigError(f"features[{i}].pooling", f"target_attention pools a sequence; {f.name!r} is an id feature (one value)")
        if f.pooling == "target_attention" and f.name in joined:
            raise ConfigError(
                f"features[{i}].pooling",
                f"{f.name!r} is joined by model.concat ({model.type}), so it is not pooled on its own; "
                "leave it out of model.concat to pool it with target_attention",
            )
        pooled_with_it = f.name not in joined and pooling_of(f, config) == "target_attention"
        if f.query is not None:
            if not pooled_with_it:
                how = f"joined by model.concat ({model.type})" if f.name in joined else f"pooled with {pooling_of(f, config)}"
                raise ConfigError(f"features[{i}].query", f"only pooling: target_attention uses a query; {f.name!r} is {how}")
            _check_query(config, f.query, f"features[{i}].query")
        elif pooled_with_it:
            if model.query is None:
                source = "its pooling" if f.pooling else "model.pooling"
                raise ConfigError(
                    f"features[{i}].query",
                    f"{f.name!r} is pooled with target_attention ({source}), which needs a query: name an id feature "
                    "here or in model.query",
                )
            default_users += 1
    if model.query is not None and not default_users:
        raise ConfigError(
            "model.query",
            "no feature takes it: it queries the features pooled with target_attention (model.pooling or their own "
            "pooling, outside model.concat) that name no query of their own",
        )


def _check_attention(config: PipelineConfig) -> None:
    """Each ``model.attention`` entry: an id query; keys and values sequences aligned step by step."""
    names = [f.name for f in config.features]
    sequences = [f.name for f in config.features if f.kind == "sequence"]
    for i, a in enumerate(config.model.attention):
        _check_query(config, a.query, f"model.attention[{i}].query")
        for role in ("keys", "values"):
            name = getattr(a, role)
            if name is None:
                continue
            field = f"model.attention[{i}].{role}"
            if name not in names:
                raise ConfigError(field, f"{name!r} is not a feature; {role} is a sequence feature: {sequences}")
            if config.feature(name).kind != "sequence":
                raise ConfigError(field, f"{name!r} is an id feature; {role} is a sequence feature: {sequences}")
        keys, values = config.feature(a.keys), config.feature(a.values_feature)
        layout = ("max_length", "truncate", "padding")
        if any(getattr(keys, k) != getattr(values, k) for k in layout):
            raise ConfigError(
                f"model.attention[{i}].values",
                f"{values.name!r} must line up step by step with the keys {keys.name!r}: the same max_length, truncate "
                f"and padding; got " + ", ".join(f"{k} {getattr(keys, k)!r}/{getattr(values, k)!r}" for k in layout),
            )


def check_model_shapes(config: PipelineConfig) -> None:
    """Raise ConfigError naming the features and shapes when the model cannot be built."""
    _check_concat(config)
    _check_target_attention(config)
    _check_attention(config)
    rank = config.model.cross_projection_dim
    if rank is not None and rank >= feature_vector_width(config):
        raise ConfigError(
            "model.cross_projection_dim",
            f"a low-rank cross layer needs a rank below the width of the concatenated feature vector, "
            f"{feature_vector_width(config)}; got {rank} (leave it out for full rank)",
        )


def _check_concat(config: PipelineConfig) -> None:
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
