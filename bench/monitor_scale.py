"""`embedpipe monitor` over many logged requests: wall time and memory, beside TFDV alone on the same examples.

    .venv/bin/python bench/monitor_scale.py [--requests 1000000] [--keep DIR]

In a scratch directory: the built-in example's pipeline runs once (`embedpipe run`, a pushed model
and its lineage in ML Metadata); then ``--requests`` logged calls are written as the server writes
them (serving/request_log.prediction_log: a Predict of one serialized example with its response,
TFRecord files of 64 MB), the rows of the built-in data cycled. Two subprocesses run one after the
other, each watched for its wall time and the peak resident memory of its whole process tree
(Beam's DirectRunner starts worker processes from 128 MB of input, pipeline/beam_mode.py):

- **monitor**: `embedpipe monitor --config F --logs PREFIX`: read the logs, find the version's
  training data through ML Metadata, statistics and OOV counts of both sides, skew;
- **TFDV alone** (the yardstick): `tfdv.generate_statistics_from_tfrecord` over the same examples
  written as plain tf.Example TFRecords, with the same schema and Beam mode: what computing the
  served side's statistics costs with nothing of ours around it.

Prints one table (machine, date) and writes bench/out/monitor_scale.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pipeline  # noqa: E402,F401 -- TF_USE_LEGACY_KERAS before TensorFlow
from bench.pipeline_wall_time import machine  # noqa: E402
from embedconfig.config import config_as_dict, config_as_yaml, load_config, parse_config  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMBEDPIPE = os.path.join(os.path.dirname(sys.executable), "embedpipe")
FILE_BYTES = 64 << 20  # the server's rotation size (serving/request_log.MAX_FILE_BYTES)


def _config(work: str):
    raw = config_as_dict(load_config(os.path.join(REPO, "configs", "synthetic.yaml"), check_schema=False))
    raw["pipeline"].update(root=os.path.join(work, "root"), metadata_path=os.path.join(work, "metadata.sqlite"))
    raw["data"]["path"] = os.path.join(work, "data")
    raw["push"]["base_directory"] = os.path.join(work, "serving")
    return parse_config(raw)


def write_logs(config, version: int, requests: int, prefix: str, plain_dir: str) -> dict:
    """``requests`` logged Predict calls of one example each under ``prefix``, and the same examples as
    plain tf.Example TFRecords in ``plain_dir``; sizes in bytes."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from records.raw_records import column_specs, record_to_example
    from serving.request_log import LOG_SUFFIX, prediction_log

    rows = []
    for name in sorted(tf.io.gfile.listdir(config.data.path)):
        with tf.io.gfile.GFile(os.path.join(config.data.path, name)) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    specs = column_specs(config)
    examples = []
    for row in rows:
        row.pop(config.label.name, None)
        examples.append(record_to_example(row, specs, "bench").SerializeToString())
    response = predict_pb2.PredictResponse()
    response.model_spec.name, response.model_spec.version.value = config.push.model_name, version
    response.outputs["probability"].CopyFrom(tf.make_tensor_proto([[0.5]], dtype=tf.float32))
    logs_bytes = plain_bytes = 0
    part, writer, plain, written = 0, None, None, 0
    tf.io.gfile.makedirs(os.path.dirname(prefix))
    tf.io.gfile.makedirs(plain_dir)
    for i in range(requests):
        if writer is None or written >= FILE_BYTES:
            for w in (writer, plain):
                if w is not None:
                    w.close()
            writer = tf.io.TFRecordWriter(f"{prefix}-bench-{part:05d}{LOG_SUFFIX}")
            plain = tf.io.TFRecordWriter(os.path.join(plain_dir, f"examples-{part:05d}.tfrecord"))
            part, written = part + 1, 0
        serialized = examples[i % len(examples)]
        request = predict_pb2.PredictRequest()
        request.model_spec.name = config.push.model_name
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto([serialized], dtype=tf.string))
        record = prediction_log(request, response).SerializeToString()
        writer.write(record)
        plain.write(serialized)
        written += len(record)
        logs_bytes += len(record)
        plain_bytes += len(serialized)
    writer.close()
    plain.close()
    return {"logs_bytes": logs_bytes, "plain_bytes": plain_bytes, "files": part}


def watched(command: list[str], env: dict | None = None) -> dict:
    """Run ``command``; its wall seconds and the peak summed RSS of its process tree, sampled every 0.2 s."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    done.set()
    sampler.join()
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak / 2**20, "returncode": process.returncode,
            "stdout": out[-4000:], "stderr": err[-4000:]}


TFDV_ALONE = """
import sys, apache_beam as beam, tensorflow_data_validation as tfdv
from apache_beam.options.pipeline_options import PipelineOptions
schema = tfdv.load_schema_text(sys.argv[2])
stats = tfdv.generate_statistics_from_tfrecord(sys.argv[1], stats_options=tfdv.StatsOptions(schema=schema),
                                               pipeline_options=PipelineOptions(sys.argv[3:]))
print(stats.datasets[0].num_examples)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--keep", help="work here and keep it (default: a temp dir, deleted)")
    parser.add_argument("--output", default=os.path.join(REPO, "bench", "out", "monitor_scale.json"))
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="monitor-bench-")
    os.makedirs(work, exist_ok=True)
    try:
        config = _config(work)
        config_file = os.path.join(work, "config.yaml")
        with open(config_file, "w") as f:  # noqa: PTH123 -- a local scratch file of the bench
            f.write(config_as_yaml(config))
        from pipeline.datasets.synthetic import write_synthetic

        write_synthetic(config.data.path, 6000)  # the built-in example's rows
        run = subprocess.run([EMBEDPIPE, "run", "--config", config_file], capture_output=True, text=True)
        versions = sorted(os.listdir(config.push.model_directory)) if os.path.isdir(config.push.model_directory) else []
        if not versions:
            raise SystemExit(f"the pipeline run pushed nothing:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        started = time.perf_counter()
        prefix = os.path.join(work, "logs", "requests")
        sizes = write_logs(config, int(versions[-1]), args.requests, prefix, os.path.join(work, "plain"))
        print(f"wrote {args.requests:,} logged calls ({sizes['logs_bytes'] / 2**20:,.0f} MB in {sizes['files']} files) "
              f"in {time.perf_counter() - started:.0f} s")
        from pipeline.beam_mode import direct_mode

        beam_args = list(direct_mode(config.beam, sizes["logs_bytes"], os.cpu_count() or 1).args)
        monitor = watched([EMBEDPIPE, "monitor", "--config", config_file, "--logs", prefix, "--output", os.path.join(work, "monitor")])
        if monitor["returncode"] not in (0, 4):
            raise SystemExit(f"monitor failed:\n{monitor['stdout']}\n{monitor['stderr']}")
        alone = watched([sys.executable, "-c", TFDV_ALONE, os.path.join(work, "plain", "*"), config.schema, *beam_args])
        if alone["returncode"] != 0:
            raise SystemExit(f"TFDV alone failed:\n{alone['stderr']}")
        result = {"machine": machine(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "requests": args.requests, **sizes, "beam_args": beam_args,
                  "monitor": {k: v for k, v in monitor.items() if k != "stderr"}, "tfdv_alone": {k: v for k, v in alone.items() if k != "stderr"}}
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:  # noqa: PTH123
            json.dump(result, f, indent=1)
        print(f"\n{result['machine']}\n{result['date']}; {args.requests:,} logged calls, {sizes['logs_bytes'] / 2**20:,.0f} MB; "
              f"Beam: {' '.join(beam_args)}\n")
        print(f"| {'run':<40} | {'wall s':>7} | {'peak RSS MB (process tree)':>26} |")
        print(f"|{'-' * 42}|{'-' * 9}|{'-' * 28}|")
        print(f"| {'embedpipe monitor (both sides, skew, OOV)':<40} | {monitor['seconds']:>7.0f} | {monitor['peak_rss_mb']:>26,.0f} |")
        print(f"| {'TFDV alone, served side only':<40} | {alone['seconds']:>7.0f} | {alone['peak_rss_mb']:>26,.0f} |")
        print("\n" + monitor["stdout"][-2500:])
        print(f"wrote {args.output}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
