"""MovieLens examples plus item-item CF scores as categorical tokens, for the neural model to embed.

    .venv/bin/python bench/cf_token_data.py --data /tmp/ml/examples3 --output /tmp/ml/examples_cf

Reads the rows ``embedpipe data movielens`` wrote and writes them again with four more id
features, ``target_cf``, ``target_cf_top10``, ``target_similarity_mean`` and
``target_similarity_max``: ``bench/tabular_reference.py``'s item-based collaborative filtering
scores (train rows out of fold), each cut into deciles of its train values ("q0" ... "q9"; "none"
without history). Beside them it writes ``movielens_cf.yaml`` (configs/movielens.yaml plus the
four features, 4-d embeddings; paths relative to the output directory) and ``schema.pbtxt``
(schema/movielens.pbtxt plus the four), so both ``bench/auc_probe.py --config`` and
``embedpipe run --config`` take it.

A probe of issue 15 (can the concatenation family reach eval AUC 0.81?), not a converter option:
the scores are statistics of other users' train labels, which a serving caller would have to
compute at request time from a similarity table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.keras_reference import read_jsonl  # noqa: E402
from bench.tabular_reference import CF_SCORES, TabularFeatures  # noqa: E402
from embedconfig.config import load_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DECILES = np.linspace(0, 1, 11)[1:-1]
TOKEN_FEATURES = {"cf": "target_cf", "cf_top10": "target_cf_top10", "similarity_mean": "target_similarity_mean",
                  "similarity_max": "target_similarity_max"}


def _token(value: float, edges: np.ndarray) -> str:
    return "none" if np.isnan(value) else f"q{int(np.searchsorted(edges, value))}"


def _write_config(config_path: Path, output: str) -> None:
    raw = yaml.safe_load(config_path.read_text())
    raw["pipeline"].update(root="run/root", metadata_path="run/metadata.sqlite")
    raw["data"]["path"] = "."
    raw["push"]["base_directory"] = "run/serving"
    raw["schema"] = "schema.pbtxt"
    raw["features"] += [{"name": name, "kind": "id", "dtype": "string", "embedding_dim": 4} for name in TOKEN_FEATURES.values()]
    with open(os.path.join(output, "movielens_cf.yaml"), "w") as f:
        f.write("# written by bench/cf_token_data.py: configs/movielens.yaml plus item-item CF tokens\n")
        yaml.safe_dump(raw, f, sort_keys=False)
    schema = (REPO / "schema" / "movielens.pbtxt").read_text()
    for name in TOKEN_FEATURES.values():
        schema += (f'feature {{\n  name: "{name}"\n  type: BYTES\n  presence {{\n    min_fraction: 1.0\n    min_count: 1\n  }}\n'
                   '  shape {\n    dim {\n      size: 1\n    }\n  }\n}\n')
    with open(os.path.join(output, "schema.pbtxt"), "w") as f:
        f.write(schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="directory with train.jsonl, validation.jsonl, eval.jsonl")
    parser.add_argument("--config", default=str(REPO / "configs" / "movielens.yaml"))
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    config = load_config(args.config)
    rows = {s: read_jsonl(os.path.join(args.data, f"{s}.jsonl")) for s in ("train", "validation", "eval")}
    features = TabularFeatures(config, rows["train"], (rows["validation"], rows["eval"]))
    scores = {s: np.array([features.cf_scores(r, s == "train") for r in rows[s]]) for s in rows}
    edges = [np.nanquantile(scores["train"][:, j], DECILES) for j in range(len(CF_SCORES))]
    os.makedirs(args.output, exist_ok=True)
    for split, split_rows in rows.items():
        with open(os.path.join(args.output, f"{split}.jsonl"), "w") as f:
            for row, values in zip(split_rows, scores[split], strict=True):
                tokens = {TOKEN_FEATURES[name]: _token(v, edges[j]) for j, (name, v) in enumerate(zip(CF_SCORES, values, strict=True))}
                f.write(json.dumps({**row, **tokens}) + "\n")
    _write_config(Path(args.config).resolve(), args.output)
    print(f"wrote {args.output}: {', '.join(f'{s} {len(r)}' for s, r in rows.items())} rows; movielens_cf.yaml, schema.pbtxt")


if __name__ == "__main__":
    main()
