"""The command line of ``embedpipe serve``: every flag of tensorflow_model_server 2.16, spelled the same.

A launch script or manifest written for ``tensorflow_model_server`` must start this server too, so
every one of its flags parses here. Each is in one of three groups, and docs/SERVING.md's table
is checked against them (tests/test_serving_flags.py):

- applied: the flag does what it does in TF Serving;
- ACCEPTED_NOT_APPLIED: parsed, then named in one warning at start with the reason (a setting
  that has no meaning here, or a tuning knob of TF Serving's C++ internals);
- REFUSED: a value other than the default stops the server at start (exit 2) with the reason,
  because serving without it would be silently different (e.g. no TLS where TLS was asked for).

Flags of our own (not TF Serving's) are marked "(not a TF Serving flag)" in their help.
"""

from __future__ import annotations

import argparse

# flag -> why it is parsed but has no effect here
ACCEPTED_NOT_APPLIED = {
    "allow_version_labels_for_unavailable_models": "labels may only name loaded versions",
    "enable_per_model_batching_parameters": "one batching configuration for all models",
    "num_load_threads": "versions load one after another in the polling thread",
    "num_unload_threads": "versions unload in the polling thread",
    "flush_filesystem_caches": "no file system caches to flush",
    "remove_unused_fields_from_bundle_metagraph": "the MetaGraphDef is not kept after loading",
    "num_tflite_pools": "one TFLite interpreter per version",
    "num_tflite_interpreters_per_pool": "one TFLite interpreter per version",
    "xla_cpu_compilation_enabled": "TensorFlow's default JIT setting is used",
    "thread_pool_factory_config_file": "TensorFlow's own thread pools are used",
    "per_process_gpu_memory_fraction": "no GPU on the machines this server is built for",
}
# flag -> why a non-default value stops the server
REFUSED = {
    "use_alts_credentials": "Google ALTS credentials are not available to this server",
    "platform_config_file": "only the TensorFlow platform is served (no custom PlatformConfigMap)",
}


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _flag_bool(p: argparse.ArgumentParser, name: str, default: bool, help_text: str = "") -> None:
    """``--name``, ``--name=true`` or ``--name=false``, as TF Serving's flag parser takes them."""
    p.add_argument(f"--{name}", type=_bool, nargs="?", const=True, default=default, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    """The flags, spelled as tensorflow_model_server spells them, with its defaults."""
    p = argparse.ArgumentParser(prog="embedpipe serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # ---- applied
    p.add_argument("--port", type=int, default=8500, help="gRPC port (0 picks a free one)")
    p.add_argument("--grpc_host", default="0.0.0.0", help="(not a TF Serving flag) address the gRPC port binds")
    p.add_argument("--grpc_socket_path", default="", help="also listen for gRPC on this UNIX socket")
    p.add_argument("--grpc_channel_arguments", default="", help="comma-separated key=value gRPC server arguments")
    p.add_argument("--grpc_max_threads", type=int, default=64, help="threads for the RPCs other than Predict")
    p.add_argument("--max_request_elements", type=int, default=2**24,
                   help="(not a TF Serving flag) most elements one request tensor may declare (checked before allocating)")
    p.add_argument("--ssl_config_file", default="", help="SSLConfig text proto: TLS (client_verify: mutual TLS), gRPC and REST")
    p.add_argument("--rest_api_port", type=int, default=0, help="REST port; 0 = no REST")
    p.add_argument("--rest_api_host", default="0.0.0.0", help="(not a TF Serving flag) address the REST port binds")
    _flag_bool(p, "rest_api_enable_cors_support", False, "answer REST calls with CORS headers")
    p.add_argument("--rest_api_num_threads", type=int, default=0, help="threads running REST calls; 0 = 4 per CPU")
    p.add_argument("--rest_api_timeout_in_ms", type=int, default=30_000,
                   help="a REST call not answered by then gets 504 (its computation, once started, runs to its end)")
    p.add_argument("--model_name", default="default")
    p.add_argument("--model_base_path", default="")
    p.add_argument("--model_config_file", default="", help="ModelServerConfig text proto (several models)")
    p.add_argument("--model_config_file_poll_wait_seconds", type=float, default=0,
                   help="re-read --model_config_file this often; 0 = read once")
    p.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0, help="0 = load once, never poll")
    p.add_argument("--max_num_load_retries", type=int, default=5, help="retries after a version failed to load")
    p.add_argument("--load_retry_interval_micros", type=int, default=60_000_000, help="wait between load retries")
    p.add_argument("--saved_model_tags", default="serve", help="comma-separated MetaGraph tags to load")
    _flag_bool(p, "allow_model_config_reload", True,
               "(not a TF Serving flag) serve ModelService.HandleReloadConfigRequest (false: refuse every reload)")
    p.add_argument("--model_reload_roots", default="",
                   help="(not a TF Serving flag) comma-separated directories a reload's base paths must lie in; "
                   "default: the base paths the server started with")
    _flag_bool(p, "enable_model_warmup", True, "replay assets.extra/tf_serving_warmup_requests at load")
    p.add_argument("--num_request_iterations_for_warmup", type=int, default=1, help="times each warmup request is replayed")
    _flag_bool(p, "enable_signature_method_name_check", False,
               "Classify/Regress only on signatures whose method_name says classify/regress")
    _flag_bool(p, "enable_batching", False)
    p.add_argument("--batching_parameters_file", default="", help="BatchingParameters text proto")
    p.add_argument("--max_batch_size", type=int, help="(not a TF Serving flag) overrides the batching file")
    p.add_argument("--batch_timeout_micros", type=int, help="(not a TF Serving flag) overrides the batching file")
    p.add_argument("--num_batch_threads", type=int, help="(not a TF Serving flag) overrides the batching file")
    p.add_argument("--max_enqueued_batches", type=int, help="(not a TF Serving flag) overrides the batching file")
    p.add_argument("--tensorflow_session_parallelism", type=int, default=0,
                   help="threads of both TensorFlow pools when the two flags below are 0")
    p.add_argument("--tensorflow_session_config_file", default="", help="ConfigProto text proto for every session")
    p.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0, help="threads inside one op; 0 = TensorFlow decides")
    p.add_argument(
        "--tensorflow_inter_op_parallelism", type=int, default=-1,
        help="ops run at once from a pool of this size; 0 = TensorFlow decides; -1 (default here) = each request's ops "
        "run on the thread serving it, no pool hand-offs (docs/SERVING.md)",
    )
    p.add_argument("--request_log_file_prefix", default="",
                   help="(not a TF Serving flag) with --model_base_path: log sampled calls as PredictionLog TFRecord files "
                   "under this prefix (a model config file sets logging_config instead)")
    p.add_argument("--request_log_sampling_rate", type=float, default=1.0,
                   help="(not a TF Serving flag) the share of calls --request_log_file_prefix logs, in [0, 1]")
    p.add_argument("--monitoring_config_file", default="", help="MonitoringConfig text proto (Prometheus on the REST port)")
    _flag_bool(p, "prefer_tflite_model", False, "serve model.tflite from a version directory when it has one")
    _flag_bool(p, "version", False, "print the version and exit")
    _flag_bool(p, "enable_profiler", True, "serve tensorflow.ProfilerService/Profile on the gRPC port")
    _flag_bool(
        p, "inline_all_functions", True,
        "(not a TF Serving flag) let Grappler inline every function call of a signature, including the Transform "
        "layer's, which it otherwise keeps as a nested call (docs/SERVING.md); false = TensorFlow's default",
    )
    # ---- accepted, not applied
    for name in ACCEPTED_NOT_APPLIED:
        p.add_argument(f"--{name}", default=None, help=f"accepted, not applied: {ACCEPTED_NOT_APPLIED[name]}")
    # ---- refused unless left at their default
    _flag_bool(p, "use_alts_credentials", False, f"refused: {REFUSED['use_alts_credentials']}")
    p.add_argument("--platform_config_file", default="", help=f"refused: {REFUSED['platform_config_file']}")
    return p


def check_flags(args: argparse.Namespace) -> list[str]:
    """Raise ValueError for a refused flag that was set; the accepted-not-applied flags that were set."""
    for name, reason in REFUSED.items():
        if getattr(args, name):
            raise ValueError(f"--{name}: {reason}")
    return [name for name in ACCEPTED_NOT_APPLIED if getattr(args, name) is not None]


def grpc_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """``a=1,b=x`` -> [("a", 1), ("b", "x")]: integers where they parse, as TF Serving passes them."""
    options: list[tuple[str, int | str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--grpc_channel_arguments: {item!r} is not key=value")
        try:
            options.append((key, int(value)))
        except ValueError:
            options.append((key, value))
    return options
