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
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*", "serving", "serving.*"]),
    install_requires=[
        "tfx[kfp]==1.16.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "apache-beam[gcp]==2.59.0",
        "tensorflow-transform==1.16.0",
        "tensorflow-model-analysis==0.47.1",
        "tensorflow-serving-api==2.16.1",
        "grpcio-health-checking==1.48.2",  # the standard grpc.health.v1 service of the model server
        "kfp==2.5.0",
        "pyyaml>=6",
    ],
    extras_require={"dev": ["pytest>=8", "ruff>=0.6"]},
    entry_points={"console_scripts": ["embedpipe=pipeline.cli:main"]},
)
