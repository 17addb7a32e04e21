"""``embedpipe``: run the pipeline, write a first schema, make example data.

    embedpipe run [--config F] [--data PATH] [--verbose]
    embedpipe config show [--config F]    (F: a YAML config or a model's assets.extra/embedpipe/config.json)
    embedpipe config schema [--output F]  (the JSON Schema of a config file, for an editor's YAML plugin)
    embedpipe schema infer --config F [--data PATH] [--output F]
    embedpipe data synthetic --rows N --output DIR [--seed S] [--signal preference|late] [--spans K [--broken SPAN:FEATURE:HOW]]
    embedpipe data from-logs --config F --logs PREFIX --labels F.jsonl --output DIR   (logged requests + labels -> a span)
    embedpipe data movielens --source DIR --output DIR [--eval-per-user 10] [--validation-per-user 10] [--no-item-cf]
    embedpipe serve --port=8500 --model_name=M --model_base_path=DIR [TF Serving flags, see serve --help]
    embedpipe monitor --config F --logs PREFIX [--baseline-statistics F [--model-dir DIR]] [--output DIR]
    embedpipe predict --server HOST:PORT --model M (--json '{...}' | --input FILE.jsonl) [--classify]
    embedpipe compile kubeflow --config F --image IMAGE --pipeline-root URI --output pipeline.yaml [--data URI] [--push-base PATH]
    embedpipe kubeflow submit --host URL --pipeline pipeline.yaml [--experiment E] [--param k=v] [--config F --threshold AUC=0.8]
    embedpipe beam-worker-pool --port 50000 [--host 127.0.0.1]   (SDK workers for beam.runner portable/flink/spark, EXTERNAL)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import pipeline  # noqa: F401 -- sets TF_USE_LEGACY_KERAS before TensorFlow loads

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "synthetic.yaml"
DEFAULT_SYNTHETIC_ROWS = 6000
EXIT_NOT_PUSHED = 3  # the run completed but the model was not blessed, so nothing was pushed


def _quiet_logs(verbose: bool) -> None:
    """Without --verbose only warnings reach stderr; progress lines come from the runner."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if verbose else "2")
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore")
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _load(args: argparse.Namespace):
    """The config of ``run`` and ``schema``: its fields first (no TensorFlow: a misspelt field is
    reported in a fraction of a second, not after the 5-12 s TensorFlow takes to import), then
    object storage for the data, root and push base, then the schema file, which may be in a bucket."""
    from embedconfig.config import check_against_schema, load_config
    from storage import enable_object_storage

    config = load_config(args.config, check_schema=False)
    enable_object_storage(beam=True)  # data, pipeline root or push base may be s3:// (gs:// is built in)
    if args.verb != "schema":  # schema infer writes the schema
        check_against_schema(config)
    if getattr(args, "data", None):
        config = config.with_data_path(os.path.abspath(args.data))
    return config


def cmd_run(args: argparse.Namespace) -> int:
    """Run the whole pipeline locally and print the summary."""
    builtin_example = args.config is None
    if builtin_example:
        args.config = DEFAULT_CONFIG
    config = _load(args)
    if builtin_example and not args.data:
        data_dir = config.data.path
        import tensorflow as tf

        if not tf.io.gfile.isdir(data_dir) or not tf.io.gfile.listdir(data_dir):
            from pipeline.datasets.synthetic import write_synthetic

            path = write_synthetic(data_dir, DEFAULT_SYNTHETIC_ROWS)
            print(f"embedpipe: no config given; wrote {DEFAULT_SYNTHETIC_ROWS} synthetic examples to {path}")
    _quiet_logs(args.verbose)
    from pipeline.local_runner import run_locally

    summary = run_locally(config, verbose=args.verbose)
    return 0 if summary.pushed else EXIT_NOT_PUSHED


def cmd_config_show(args: argparse.Namespace) -> int:
    """Print the resolved config as YAML: what a run of it would use."""
    from embedconfig.config import config_as_yaml, load_config

    path = str(args.config or DEFAULT_CONFIG)
    if "://" in path:
        from storage import enable_object_storage

        enable_object_storage()
    sys.stdout.write(config_as_yaml(load_config(path, check_schema=False)))
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    """Print (or write) the JSON Schema of a config file."""
    import json

    from embedconfig.config import config_json_schema

    text = json.dumps(config_json_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_schema_infer(args: argparse.Namespace) -> int:
    """Write a first schema from the data, for a person to curate."""
    config = _load(args)
    _quiet_logs(args.verbose)
    from pipeline.schema_infer import infer_schema_file

    output = args.output or config.schema
    notes = infer_schema_file(config, output)
    print(f"wrote {output}")
    for note in notes:
        print(f"  - {note}")
    print("Review it (domains, presence, value counts) before pointing a run at it.")
    return 0


def cmd_data_synthetic(args: argparse.Namespace) -> int:
    """Write synthetic JSONL examples."""
    from embedconfig.config import ConfigError
    from pipeline.datasets.synthetic import write_synthetic, write_synthetic_spans

    if args.spans:
        broken = None
        if args.broken:
            span, _, rest = args.broken.partition(":")
            feature, _, how = rest.partition(":")
            if not span.isdigit() or not feature or not how:
                raise ConfigError("--broken", f"{args.broken!r} is not SPAN:FEATURE:empty|collapse, e.g. 3:interests:empty")
            broken = (int(span), feature, how)
        try:
            paths = write_synthetic_spans(args.output, args.rows, args.spans, seed=args.seed, broken=broken)
        except ValueError as e:
            raise ConfigError("--broken", str(e)) from e
        print(f"wrote {args.spans} spans of {args.rows} examples: {paths[0]} .. {paths[-1]}")
        return 0
    if args.broken:
        raise ConfigError("--broken", "breaks a day of --spans; give --spans too")
    path = write_synthetic(args.output, args.rows, seed=args.seed, signal=args.signal, shards=args.shards)
    print(f"wrote {args.rows} examples to {path}")
    return 0


def cmd_data_from_logs(args: argparse.Namespace) -> int:
    """Join logged requests with labels by data.key; write the rows as a span of raw examples."""
    config = _load(args)
    _quiet_logs(False)
    from pipeline.datasets.request_logs import OUTPUT_FILE, from_logs
    from pipeline.monitor import MonitorError

    try:
        counts = from_logs(config, args.logs, args.labels, args.output)
    except (MonitorError, ValueError) as e:
        print(f"embedpipe data from-logs: {e}", file=sys.stderr)
        return 2
    print(f"{counts.render()}\nwrote {os.path.join(args.output, OUTPUT_FILE)}")
    return 0


def cmd_data_movielens(args: argparse.Namespace) -> int:
    """Convert MovieLens CSVs into JSONL examples split by time."""
    from pipeline.datasets.movielens import convert_movielens

    s = convert_movielens(args.source, args.output, eval_per_user=args.eval_per_user, max_history=args.max_history,
                          validation_per_user=args.validation_per_user, item_cf_tokens=args.item_cf)
    print(f"{s.users} users: {s.train_examples} train examples -> {s.train_path}, "
          f"{s.validation_examples} validation examples -> {s.validation_path}, {s.eval_examples} eval examples -> {s.eval_path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Score raw rows on a TF Serving-compatible server; one score per line."""
    import json

    from serving.client import ModelClient

    if (args.json is None) == (args.input is None):
        raise SystemExit("embedpipe predict: give exactly one of --json or --input")
    if args.json is not None:
        rows = [json.loads(args.json)]
    else:
        import tensorflow as tf

        with tf.io.gfile.GFile(args.input) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    specs = None
    if args.config:
        from embedconfig.config import load_config
        from records.raw_records import column_specs

        specs = column_specs(load_config(args.config))
    client = ModelClient(args.server, args.model, specs=specs)
    try:
        scores = client.classify(rows) if args.classify else client.predict(rows, signature=args.signature)
    finally:
        client.close()
    for score in scores:
        print(f"{score:.6f}")
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    """Logged requests against the training data of the version that answered them; exit 4 on skew."""
    config = _load(args)
    _quiet_logs(args.verbose)
    from pipeline.monitor import SKEW_EXIT_CODE, MonitorError, default_output_dir, format_report, run_monitor

    output = args.output or default_output_dir(config)
    try:
        results = run_monitor(config, args.logs, output, args.baseline_statistics, args.model_dir)
    except MonitorError as e:
        print(f"embedpipe monitor: {e}", file=sys.stderr)
        return 2
    print(format_report(results))
    skewed = [(r.version, f.feature) for r in results for f in r.skewed]
    if skewed:
        print("embedpipe monitor: skew in " + ", ".join(f"version {v} feature '{name}'" for v, name in skewed))
        return SKEW_EXIT_CODE
    return 0


def cmd_compile_kubeflow(args: argparse.Namespace) -> int:
    """Compile the pipeline into a KFP v2 PipelineSpec."""
    _quiet_logs(verbose=False)
    from embedconfig.config import load_config
    from pipeline.kubeflow_runner import S3_SECRET_KEYS, compile_kubeflow, describe

    config = load_config(args.config)
    env_secret = None
    if args.env_secret:
        name, _, keys = args.env_secret.partition("=")
        env_secret = (name, tuple(k for k in keys.split(",") if k) or S3_SECRET_KEYS)
    job = compile_kubeflow(config, args.image, args.pipeline_root, args.output, data=args.data, push_base=args.push_base,
                           env_secret=env_secret)
    print(f"embedpipe: wrote {args.output}\n{describe(job)}")
    return 0


def cmd_kubeflow_submit(args: argparse.Namespace) -> int:
    """Upload a compiled pipeline and start a run on a KFP endpoint."""
    from pipeline.kubeflow_runner import parse_params, submit

    config = None
    if args.config:
        from embedconfig.config import load_config

        config = load_config(args.config)
    params = parse_params(args.param or [], config, args.threshold or [])
    run_id = submit(args.host, args.pipeline, args.experiment, params, args.run_name)
    print(f"embedpipe: started run {run_id} on {args.host} with parameters {sorted(params)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``embedpipe`` command."""
    parser = argparse.ArgumentParser(prog="embedpipe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)

    run = verbs.add_parser("run", help="run the pipeline locally (built-in synthetic example without --config)")
    run.add_argument("--config", type=Path, help="YAML config (default: the built-in synthetic example)")
    run.add_argument("--data", help="override data.path: a file, a glob, or a directory holding the split files")
    run.add_argument("--verbose", action="store_true", help="show TFX, Beam and TensorFlow logs")
    run.set_defaults(func=cmd_run)

    config = verbs.add_parser("config", help="the config: resolved, or its JSON Schema").add_subparsers(dest="config_verb", required=True)
    show = config.add_parser("show", help="the resolved config, every default filled in, as YAML (it loads as a config again)")
    show.add_argument("--config", help="a YAML config, or the config.json inside a model (assets.extra/embedpipe/config.json); "
                                       "a path or a gs:// / s3:// URI (default: the built-in example)")
    show.set_defaults(func=cmd_config_show)
    json_schema = config.add_parser("schema", help="the JSON Schema of a config file (for an editor's YAML plugin; see README)")
    json_schema.add_argument("--output", help="write it to this file (default: standard output)")
    json_schema.set_defaults(func=cmd_config_schema)

    schema = verbs.add_parser("schema", help="schema tools").add_subparsers(dest="schema_verb", required=True)
    infer = schema.add_parser("infer", help="write a first schema from the data for a person to curate")
    infer.add_argument("--config", type=Path, required=True)
    infer.add_argument("--data", help="override data.path")
    infer.add_argument("--output", help="where to write the .pbtxt (default: the config's schema path)")
    infer.add_argument("--verbose", action="store_true")
    infer.set_defaults(func=cmd_schema_infer)

    data = verbs.add_parser("data", help="example data").add_subparsers(dest="data_verb", required=True)
    synthetic = data.add_parser("synthetic", help="synthetic click data with a learnable signal")
    synthetic.add_argument("--rows", type=int, required=True)
    synthetic.add_argument("--output", required=True)
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--signal", choices=("preference", "late"), default="preference")
    synthetic.add_argument("--shards", type=int, default=1, help="write N files of the same users (default: one file)")
    synthetic.add_argument("--spans", type=int, default=0,
                           help="write K days as OUTPUT/span-1 .. span-K (--rows each): the same users, new items, "
                                "another trending category each day (data.path: OUTPUT/span-{SPAN}/)")
    synthetic.add_argument("--broken", metavar="SPAN:FEATURE:empty|collapse",
                           help="with --spans: that day's feature has no values (empty) or one value (collapse)")
    synthetic.set_defaults(func=cmd_data_synthetic)
    logs = data.add_parser("from-logs", help="logged requests joined with later labels by data.key -> raw JSONL (the next span)")
    logs.add_argument("--config", required=True, help="the pipeline's config (data.key, features, label)")
    logs.add_argument("--logs", required=True, help="the request-log prefix (logging_config's filename_prefix)")
    logs.add_argument("--labels", required=True, help='JSONL of {"<data.key>": ..., "<label.name>": ...}')
    logs.add_argument("--output", required=True, help="the span directory to write, e.g. data/span-8")
    logs.set_defaults(func=cmd_data_from_logs)
    movielens = data.add_parser("movielens", help="MovieLens CSV layout -> JSONL examples split by time")
    movielens.add_argument("--source", required=True, help="directory with ratings.csv and movies.csv")
    movielens.add_argument("--output", required=True)
    movielens.add_argument("--eval-per-user", type=int, default=10, help="each user's last N ratings go to eval")
    movielens.add_argument("--validation-per-user", type=int, default=10,
                           help="the N ratings before those go to validation (what the Trainer early-stops on)")
    movielens.add_argument("--max-history", type=int, default=50)
    movielens.add_argument("--no-item-cf", dest="item_cf", action="store_false",
                           help="leave out the item-based CF tokens (target_cf, ...; configs/movielens.yaml uses them)")
    movielens.set_defaults(func=cmd_data_movielens)

    verbs.add_parser("serve", help="serve pushed models over TF Serving's gRPC/REST API (flags: embedpipe serve --help)")
    monitor = verbs.add_parser("monitor", help="logged requests vs the training data of the version that answered (exit 4 on skew)")
    monitor.add_argument("--config", required=True, help="the pipeline's config (schema, thresholds, metadata store)")
    monitor.add_argument("--logs", required=True, help="the request-log prefix (logging_config's filename_prefix)")
    monitor.add_argument("--baseline-statistics", default="",
                         help="training statistics to compare with (TFX's FeatureStats.pb) instead of the pushed version's lineage")
    monitor.add_argument("--model-dir", default="", help="with --baseline-statistics: the served version's directory (its vocabularies)")
    monitor.add_argument("--output", default="", help="where statistics and anomalies go (default: <pipeline root>/monitor/<UTC time>)")
    monitor.add_argument("--verbose", action="store_true", help="TensorFlow's and Beam's logs too")
    monitor.set_defaults(func=cmd_monitor)
    predict = verbs.add_parser("predict", help="score raw rows on a TF Serving-compatible server")
    predict.add_argument("--server", required=True, help="HOST:PORT of the gRPC endpoint")
    predict.add_argument("--model", required=True, help="model name on the server")
    predict.add_argument("--json", help="one row as a JSON object of raw feature values")
    predict.add_argument("--input", help="a JSONL file of rows")
    predict.add_argument("--signature", default="serving_default")
    predict.add_argument("--classify", action="store_true", help="use Classify (signature 'classify') instead of Predict")
    predict.add_argument("--config", type=Path, help="pipeline config: types the values by the declared features")
    predict.set_defaults(func=cmd_predict)

    compile_ = verbs.add_parser("compile", help="compile the pipeline for an orchestrator").add_subparsers(dest="compile_verb", required=True)
    kfp_compile = compile_.add_parser("kubeflow", help="KFP v2 PipelineSpec (TFX KubeflowV2DagRunner)")
    kfp_compile.add_argument("--config", type=Path, required=True)
    kfp_compile.add_argument("--image", required=True, help="the pipeline image (kubeflow/Dockerfile), e.g. REGISTRY/embedpipe:TAG")
    kfp_compile.add_argument("--pipeline-root", required=True, help="artifact root the pods write to: gs:// or s3:// (MinIO too, see docs/KUBEFLOW.md)")
    kfp_compile.add_argument("--output", required=True, help="pipeline.yaml (or .json for the PipelineJob)")
    kfp_compile.add_argument("--data", help="data.path as the pods see it (a URI or a mounted path); a directory ends with /")
    kfp_compile.add_argument("--push-base", help="push.base_directory as the pods see it (the serving PVC mount or a bucket)")
    kfp_compile.add_argument("--env-secret", metavar="SECRET[=KEY,...]",
                             help="a Kubernetes secret every task gets as environment variables (bucket credentials); "
                                  "keys default to AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_ENDPOINT_URL_S3,AWS_DEFAULT_REGION")
    kfp_compile.set_defaults(func=cmd_compile_kubeflow)

    kubeflow = verbs.add_parser("kubeflow", help="Kubeflow Pipelines").add_subparsers(dest="kubeflow_verb", required=True)
    kfp_submit = kubeflow.add_parser("submit", help="upload a compiled pipeline and start a run")
    kfp_submit.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    kfp_submit.add_argument("--pipeline", required=True, help="the compiled pipeline.yaml")
    kfp_submit.add_argument("--experiment", help="experiment name (default: embedpipe)")
    kfp_submit.add_argument("--run-name")
    kfp_submit.add_argument("--param", action="append", help="run-time parameter NAME=VALUE: epochs, learning_rate, eval_config")
    kfp_submit.add_argument("--config", type=Path, help="the config compiled from (types parameters, rebuilds eval_config)")
    kfp_submit.add_argument("--threshold", action="append", help="METRIC=LOWER_BOUND, e.g. AUC=0.8 (needs --config)")
    kfp_submit.set_defaults(func=cmd_kubeflow_submit)

    pool = verbs.add_parser("beam-worker-pool", help="Beam SDK worker pool for an EXTERNAL environment (pipeline/beam_worker.py)")
    pool.add_argument("--port", type=int, required=True, help="the port beam.options.environment_config names")
    pool.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    pool.set_defaults(func=cmd_beam_worker_pool)
    return parser


def cmd_beam_worker_pool(args: argparse.Namespace) -> int:
    """Serve Beam SDK workers until SIGTERM/SIGINT."""
    from pipeline.beam_worker import run_worker_pool

    return run_worker_pool(args.port, args.host)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``embedpipe`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # TF Serving's own flag syntax, parsed by the server
        from serving.server import main as serve_main

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        return serve_main(argv[1:])
    args = build_parser().parse_args(argv)
    from embedconfig.config import ConfigError

    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError) as e:
        print(f"embedpipe: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
