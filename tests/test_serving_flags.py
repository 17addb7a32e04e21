"""``embedpipe serve`` takes every flag of tensorflow_model_server, and says what it does with each."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from serving.flags import ACCEPTED_NOT_APPLIED, REFUSED, build_parser, check_flags, grpc_channel_arguments
from serving.server import main as serve_main
from serving.server import session_config

REPO = Path(__file__).resolve().parents[1]

# The flag list of TF Serving 2.16's tensorflow_serving/model_servers/main.cc, the yardstick.
TF_SERVING_FLAGS = (
    "port grpc_socket_path rest_api_port rest_api_num_threads rest_api_timeout_in_ms rest_api_enable_cors_support "
    "enable_batching allow_version_labels_for_unavailable_models batching_parameters_file "
    "enable_per_model_batching_parameters model_config_file model_config_file_poll_wait_seconds model_name "
    "model_base_path num_load_threads num_unload_threads max_num_load_retries load_retry_interval_micros "
    "file_system_poll_wait_seconds flush_filesystem_caches tensorflow_session_parallelism "
    "tensorflow_session_config_file tensorflow_intra_op_parallelism tensorflow_inter_op_parallelism "
    "use_alts_credentials ssl_config_file platform_config_file per_process_gpu_memory_fraction saved_model_tags "
    "grpc_channel_arguments grpc_max_threads enable_model_warmup num_request_iterations_for_warmup version "
    "monitoring_config_file remove_unused_fields_from_bundle_metagraph prefer_tflite_model num_tflite_pools "
    "num_tflite_interpreters_per_pool enable_signature_method_name_check xla_cpu_compilation_enabled "
    "enable_profiler thread_pool_factory_config_file"
).split()


def _documented() -> dict[str, str]:
    """flag -> group, from docs/SERVING.md's table."""
    rows = {}
    for line in (REPO / "docs" / "SERVING.md").read_text().splitlines():
        m = re.match(r"\| (`--.*?) \| (applied|accepted|refused) \|", line)
        if m:
            for flag in re.findall(r"`--([a-z_]+)`", m.group(1)):
                rows[flag] = m.group(2)
    return rows


def test_every_tf_serving_flag_parses() -> None:
    known = {a.dest for a in build_parser()._actions}
    assert set(TF_SERVING_FLAGS) <= known, sorted(set(TF_SERVING_FLAGS) - known)


def test_the_docs_table_says_what_happens_to_every_flag() -> None:
    documented = _documented()
    assert set(TF_SERVING_FLAGS) <= set(documented), sorted(set(TF_SERVING_FLAGS) - set(documented))
    for flag, group in documented.items():
        expected = "accepted" if flag in ACCEPTED_NOT_APPLIED else "refused" if flag in REFUSED else "applied"
        assert group == expected, flag


@pytest.mark.parametrize("flag", ["--use_alts_credentials", "--platform_config_file=p.cfg"])
def test_a_refused_flag_stops_the_server_naming_it(flag: str, capsys) -> None:
    assert serve_main([flag, "--model_base_path=/nonexistent"]) == 2
    assert flag.split("=")[0] in capsys.readouterr().err


def test_accepted_flags_are_named_once_and_boolean_flags_take_tf_serving_syntax() -> None:
    args = build_parser().parse_args(["--num_load_threads=4", "--flush_filesystem_caches=false", "--enable_batching",
                                      "--enable_model_warmup=false", "--rest_api_enable_cors_support=true"])
    assert check_flags(args) == ["num_load_threads", "flush_filesystem_caches"]
    assert args.enable_batching is True and args.enable_model_warmup is False and args.rest_api_enable_cors_support is True


def test_grpc_channel_arguments_are_typed_like_tf_servings() -> None:
    assert grpc_channel_arguments("grpc.max_connection_age_ms=2000,grpc.primary_user_agent=embed") == [
        ("grpc.max_connection_age_ms", 2000), ("grpc.primary_user_agent", "embed")]
    assert grpc_channel_arguments("") == []
    with pytest.raises(ValueError, match="not key=value"):
        grpc_channel_arguments("grpc.max_connection_age_ms")


def test_session_flags_build_the_session_config(tmp_path: Path) -> None:
    config_file = tmp_path / "session.pbtxt"
    config_file.write_text("intra_op_parallelism_threads: 7 allow_soft_placement: true")
    parse = build_parser().parse_args
    config = session_config(parse([f"--tensorflow_session_config_file={config_file}"]))
    assert config.intra_op_parallelism_threads == 7 and config.allow_soft_placement
    config = session_config(parse(["--tensorflow_session_parallelism=3", "--tensorflow_inter_op_parallelism=0"]))
    assert config.intra_op_parallelism_threads == 3 and config.inter_op_parallelism_threads == 3
    config = session_config(parse(["--tensorflow_session_parallelism=3", "--tensorflow_intra_op_parallelism=2"]))
    assert config.intra_op_parallelism_threads == 2


def test_version_prints_and_exits(capsys) -> None:
    assert serve_main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("TensorFlow ModelServer: ") and "TensorFlow Library: 2.16" in out


def test_a_warning_names_the_accepted_flags(caplog, tmp_path: Path) -> None:
    from serving.server import start_server

    with caplog.at_level(logging.WARNING, logger="embedpipe.serving"):
        running = start_server(build_parser().parse_args(
            ["--port=0", f"--model_base_path={tmp_path}", "--num_load_threads=4", "--xla_cpu_compilation_enabled=true"]))
        running.stop(grace=0)
    assert any("--num_load_threads, --xla_cpu_compilation_enabled" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("flag", ["ssl_config_file", "model_config_file", "monitoring_config_file", "batching_parameters_file",
                                  "tensorflow_session_config_file"])
def test_a_flag_naming_a_missing_file_exits_2_naming_the_flag_and_the_path(flag: str, tmp_path, capsys) -> None:
    """As docs/RELIABILITY.md says of a bad flag or config file (issue 40: it was exit 1 with a NotFoundError traceback)."""
    missing = tmp_path / "nonexistent.config"
    args = [f"--{flag}={missing}", "--enable_batching"] if flag == "batching_parameters_file" else [f"--{flag}={missing}"]
    if flag != "model_config_file":
        args.append(f"--model_base_path={tmp_path}")
    assert serve_main(args) == 2
    err = capsys.readouterr().err
    assert f"embedpipe serve: --{flag}={missing}: no such file" in err, err
    assert "Traceback" not in err
