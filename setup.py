"""embedpipe: a TFX pipeline for multi-embedding concatenation models.

Exact versions live in constraints.txt (install with ``-c constraints.txt``); the ranges here only
say what the code needs.
"""

from setuptools import find_packages, setup

setup(
    name="embedpipe",
    version="0.1.0",
    description="TFX pipeline for multi-embedding concatenation models, served over the TF Serving API",
    python_requires=">=3.10,<3.11",
    # Never a top-level package named 'kubeflow': it would shadow the real kubeflow namespace.
    packages=find_packages(
        include=["patches", "embedconfig", "records", "models", "storage", "storage.*", "pipeline", "pipeline.*", "components", "components.*", "serving", "serving.*"]
    ),
    install_requires=[
        "tfx[kfp]==1.16.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        # [aws]: Beam's own s3:// IO (boto3), for ExampleGen and the other Beam writes on a bucket
        "apache-beam[gcp,aws]==2.59.0",
        "tensorflow-transform==1.16.0",
        "tensorflow-model-analysis==0.47.1",
        "tensorflow-serving-api==2.16.1",
        # s3:// for tf.io.gfile (TensorFlow 2.16 has gs:// built in, not s3://); 0.37.1 is the release
        # for TF 2.16 and the last one. Its exit abort is fixed in patches/__init__.py.
        "tensorflow-io==0.37.1",
        # TF Text's kernels, which tensorflow_model_server links: models that use them must load
        "tensorflow-text==2.16.1",
        # REST transport: header/body deadlines and asyncio connections (serving/rest_server.py);
        # already in the stack through TFX's notebook dependencies, now used directly
        "tornado>=6.4,<7",
        "grpcio-health-checking==1.48.2",  # the standard grpc.health.v1 service of the model server
        "kfp==2.5.0",
        "pyyaml>=6",
        # the config's one declaration per field, its validation and its JSON Schema (embedconfig/config.py);
        # already in the stack through TFX's dependencies (2.14.4 pinned), now used directly
        "pydantic>=2.7,<3",
        # ExampleGen's JSON Lines parsing: 161K vs 74K lines/s for json (records/raw_records.py);
        # already in the stack through TFX's dependencies, now used directly
        "orjson>=3.9",
        # DCN-v2 cross layers (models/model.py, model.cross_layers): tfrs.layers.dcn.Cross, pure
        # Python; with TF_USE_LEGACY_KERAS=1 it subclasses tf_keras' Layer and survives SavedModel
        # export and reload (tests/test_model.py). 0.7.3: its dependencies are already in the stack;
        # 0.7.7 has the same Cross and adds a Keras 3 check.
        "tensorflow-recommenders==0.7.3",
    ],
    # moto[server]: the S3-API server the object-storage tests start (a stand-in for MinIO / S3)
    # pytest-xdist: make test runs the suite on both cores, in about two thirds of one core's time
    # (bench/RESULTS.md, "The test suite's own time")
    # matplotlib: bench/scale.py's PNG of the scaling curve; psutil (already pinned through TFX's
    # dependencies) samples the process tree there
    # jsonschema (pinned through the stack): tests check shipped configs against `embedpipe config schema`
    extras_require={"dev": ["pytest>=8", "ruff>=0.6", "moto[server]>=5", "pytest-xdist>=3", "matplotlib>=3.9", "psutil>=5",
                            "jsonschema>=4"]},
    # embedpipe-beam-worker: the SDK worker boot that `embedpipe beam-worker-pool` starts per worker
    entry_points={"console_scripts": ["embedpipe=pipeline.cli:main", "embedpipe-beam-worker=pipeline.beam_worker:boot_main"]},
)
