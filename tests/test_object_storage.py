"""Object storage underneath: what any process that touches a bucket through tensorflow-io needs.

The whole pipeline on buckets (data, pipeline root and push base on a local S3-API server, three
runs, a server on the bucket) is tests/test_pipeline_e2e.py; the compiled Kubeflow tasks on a
bucket are tests/test_kubeflow.py. Here: tensorflow-io's abort at exit (tensorflow/io#2039) and
the fix every entry point installs, and the endpoint taken from the standard AWS variables.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from patches import SHUTDOWN_SYMBOL, elf_symbol_offset
from storage import configure_s3_environment
from tests.helpers.s3_server import environment_without_buckets

pytestmark = pytest.mark.e2e

PROBES = "embedpipe-exit-probes"

_S3_WRITE = """
import sys
sys.path.insert(0, {repo!r})
import storage
if sys.argv[1] == "fixed":
    storage.enable_object_storage()
else:  # what any process gets that imports tensorflow-io (TFT and TFMA do) and touches a bucket
    storage.configure_s3_environment()
    import tensorflow_io
import tensorflow as tf
with tf.io.gfile.GFile("s3://{bucket}/exit-probe/" + sys.argv[2], "w") as f:
    f.write("written")
sys.exit(int(sys.argv[2]))
"""


def _write_probe(s3, code: int, fixed: bool) -> subprocess.CompletedProcess:
    script = _S3_WRITE.format(repo=str(Path(__file__).resolve().parents[1]), bucket=PROBES)
    return subprocess.run([sys.executable, "-c", script, "fixed" if fixed else "plain", str(code)],
                          env={**environment_without_buckets(), **s3.env()}, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def probes_bucket(s3) -> None:
    s3.client().create_bucket(Bucket=PROBES)


def test_a_process_that_wrote_to_a_bucket_exits_with_its_own_code(s3, probes_bucket) -> None:
    for code in (0, 3):
        fixed = _write_probe(s3, code, fixed=True)
        assert fixed.returncode == code, fixed.stderr[-2000:]
    assert sorted(s3.keys(PROBES, "exit-probe/")) == ["exit-probe/0", "exit-probe/3"]


def test_without_the_exit_fix_tensorflow_io_still_aborts(s3, probes_bucket) -> None:
    """The upstream bug the fix exists for (tensorflow/io#2039); if this fails, the fix may go."""
    plain = _write_probe(s3, 0, fixed=False)
    assert plain.returncode == -signal.SIGABRT and "pure virtual method called" in plain.stderr


def test_the_exit_fix_finds_its_symbol_in_the_pinned_plugin() -> None:
    import tensorflow_io

    plugin = Path(tensorflow_io.__file__).parent / "python" / "ops" / "libtensorflow_io_plugins.so"
    assert elf_symbol_offset(str(plugin), SHUTDOWN_SYMBOL) is not None
    assert elf_symbol_offset(str(plugin), b"no_such_symbol") is None


def test_tensorflow_io_gets_its_endpoint_from_the_standard_variables() -> None:
    env = {"AWS_ENDPOINT_URL_S3": "http://minio.kubeflow:9000", "AWS_DEFAULT_REGION": "eu-west-1"}
    configure_s3_environment(env)
    assert env["S3_ENDPOINT"] == "http://minio.kubeflow:9000" and env["S3_USE_HTTPS"] == "0"
    assert env["AWS_REGION"] == "eu-west-1"
    own = {"AWS_ENDPOINT_URL": "https://s3.example.com", "S3_ENDPOINT": "https://other:9000"}
    configure_s3_environment(own)
    assert own["S3_ENDPOINT"] == "https://other:9000" and "S3_USE_HTTPS" not in own  # the user's own setting wins


def test_beams_s3_io_shares_one_boto3_client_across_file_operations(s3, probes_bucket, monkeypatch) -> None:
    """Beam 2.59 builds a boto3 client per file operation (patches.share_beam_s3_clients); shared, it
    builds one, and every operation a Beam write and read makes still works on the bucket."""
    import boto3
    from apache_beam.io.aws.clients.s3 import boto3_client
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    from patches import share_beam_s3_clients

    built = []
    session_client = boto3.session.Session.client
    monkeypatch.setattr(boto3.session.Session, "client", lambda self, *a, **kw: built.append(kw) or session_client(self, *a, **kw))

    def file_operations(prefix: str) -> None:
        base = f"s3://{PROBES}/{prefix}"
        with FileSystems.create(f"{base}/a.txt") as f:
            f.write(b"first\n")
        FileSystems.rename([f"{base}/a.txt"], [f"{base}/b.txt"])
        [match] = FileSystems.match([f"{base}/*.txt"])
        assert [m.path for m in match.metadata_list] == [f"{base}/b.txt"]
        with FileSystems.open(f"{base}/b.txt") as f:
            assert f.read() == b"first\n"
        assert FileSystems.exists(f"{base}/b.txt")
        FileSystems.delete([f"{base}/b.txt"])
        assert not FileSystems.exists(f"{base}/b.txt")

    monkeypatch.setattr(FileSystems, "_pipeline_options", PipelineOptions([]))  # as in a Beam job: endpoint from the environment
    monkeypatch.setattr(boto3_client, "boto3", boto3)  # Beam as installed
    file_operations("unshared")
    unshared = len(built)
    built.clear()
    assert share_beam_s3_clients()
    file_operations("shared")
    file_operations("shared-again")
    assert unshared >= 7 and len(built) == 1, (unshared, built)
    assert s3.keys(PROBES, "shared") == [] and s3.keys(PROBES, "unshared") == []
