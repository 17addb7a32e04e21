"""beam.runner profiles: the portable runners' options and the errors that name them."""

from __future__ import annotations

import pytest

from embedconfig.beam_profiles import beam_args_for


def test_portable_runner_reaches_a_job_service_with_an_external_worker_pool() -> None:
    args = beam_args_for("portable", {"job_endpoint": "127.0.0.1:8099", "environment_config": "127.0.0.1:50000"}).flags
    assert args[0] == "--runner=PortableRunner"
    assert {"--job_endpoint=127.0.0.1:8099", "--environment_type=EXTERNAL", "--environment_config=127.0.0.1:50000"} <= set(args)
    # Beam 2.59's default (60 s) is the deadline of the job's state stream: longer jobs failed
    assert "--job_server_timeout=86400" in args


@pytest.mark.parametrize("runner", ["portable", "flink", "spark"])
def test_an_external_environment_needs_the_pool_address(runner: str) -> None:
    with pytest.raises(ValueError, match=r"beam.options.environment_config: host:port of the SDK worker pool"):
        beam_args_for(runner, {"job_endpoint": "x:1", "environment_type": "EXTERNAL"})


def test_flink_keeps_docker_by_default_and_names_the_missing_image() -> None:
    with pytest.raises(ValueError, match=r"beam.options.environment_config: the SDK harness image"):
        beam_args_for("flink", {"job_endpoint": "flink:8099"})
    args = beam_args_for("flink", {"job_endpoint": "flink:8099", "environment_config": "img", "sdk_worker_parallelism": 2}).flags
    assert {"--environment_type=DOCKER", "--sdk_worker_parallelism=2", "--job_server_timeout=86400"} <= set(args)
