"""MovieLens-100K cold runs of this checkout beside the commit issue 13's target was measured on, same hour.

    .venv/bin/python bench/against_reference.py --movielens RAW_DIR [--reference 59d311e] [--rounds 2]

Why: this VM's speed moves by up to 3x from hour to hour, and the same cold run at the same commit
with it (bench/RESULTS.md, "The machine, and how to compare wall times on it"),
so a wall time alone cannot say whether issue 13's "MovieLens-100K cold <= 90 s" holds. That target
was set against 107.7 s at 59d311e
(bench/RESULTS.md, "The reference: 107.7 s at 59d311e (2026-11-28)").
This script runs that commit's own pipeline (its config, its data converter, in a git worktree)
beside this checkout in one invocation, in an order that cancels a linear drift of the VM's speed
(A B C, then C B A), so their ratio is measured on one machine at one time. The target as a ratio
is 90 / 107.7 = 0.836 of the reference.

Three arms, each a cold run in a fresh process with a fresh pipeline root:
- ``reference``: the reference commit, its configs/movielens.yaml on its converter's data;
- ``shipped``: this checkout, configs/movielens.yaml (the config issue 15 grew: GRU on the ratings,
  attention, item-CF tokens, a validation split, the serving canary);
- ``reference model``: this checkout with the reference's model (the same five features, pooled mean,
  learning rate 1e-3, 3 epochs, patience 1), so the code's speed shows apart from the heavier model.
``RAW_DIR`` holds MovieLens' ratings.csv and movies.csv (``../shared/data/fetch_ml100k.sh RAW_DIR``).
Prints a table per component (every run, and each arm's mean) and writes bench/out/against_reference.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine_speed import describe, machine_speed_in_subprocess  # noqa: E402
from bench.pipeline_wall_time import machine  # noqa: E402

REFERENCE_COMMIT = "59d311e"  # bench/RESULTS.md, "The reference: 107.7 s at 59d311e (2026-11-28)"
REFERENCE_SECONDS, TARGET_SECONDS = 107.7, 90.0
REFERENCE_FEATURES = ("user", "history", "target", "liked_genres", "target_genres")
# the reference's training section (its learning rate, 3 epochs, patience 1), whatever the shipped one says
REFERENCE_TRAINING = {"learning_rate": 1e-3, "epochs": 3, "early_stopping": {"patience": 1}}

# One cold run in the tree it is started in (cwd and PYTHONPATH): both the reference commit and this
# checkout have pipeline.local_runner.run_locally(config, out, on_durations) and a config with
# pipeline.root, metadata_path and push.base_directory; only load_config moved (to embedconfig/).
COLD_RUN = """
import dataclasses, io, json, os, sys, time
import pipeline  # Keras 2 before TensorFlow
if os.path.isdir("embedconfig"):  # not an ImportError test: this checkout's editable install has embedconfig
    from embedconfig.config import load_config
else:
    from pipeline.config import load_config
from pipeline.local_runner import run_locally


def replace(section, **changes):  # the reference's config is dataclasses, this checkout's pydantic
    if dataclasses.is_dataclass(section):
        return dataclasses.replace(section, **changes)
    from embedconfig.config import replace as replace_section
    return replace_section(section, **changes)


config_path, data, work, out = sys.argv[1:5]
config = load_config(config_path).with_data_path(data)
config = replace(
    config,
    pipeline=replace(config.pipeline, root=f"{work}/root", metadata_path=f"{work}/metadata.sqlite"),
    push=replace(config.push, base_directory=f"{work}/serving"),
)
durations = {}
start = time.monotonic()
summary = run_locally(config, out=io.StringIO(), on_durations=durations.update)
with open(out, "w") as f:
    json.dump({"total_s": time.monotonic() - start, "components_s": durations, "auc": summary.metrics.get("auc")}, f)
"""


def reference_model_config(shipped: Path, scratch: Path) -> Path:
    """configs/movielens.yaml with the reference's model: its five features, no attention, its training section."""
    import yaml

    raw = yaml.safe_load(shipped.read_text())
    raw["features"] = [f for f in raw["features"] if f["name"] in REFERENCE_FEATURES]
    raw["model"].pop("attention", None)
    raw["training"].update(REFERENCE_TRAINING)
    # the copy lives elsewhere: the schema, its one relative path the runs do not override, must still resolve
    raw["schema"] = str((shipped.parent / raw["schema"]).resolve())
    path = scratch / "movielens_reference_model.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def convert_movielens(tree: Path, raw_dir: str, output: Path) -> None:
    """That tree's own ``embedpipe data movielens`` (the reference's has no validation split)."""
    argv = ["embedpipe", "data", "movielens", "--source", raw_dir, "--output", str(output)]
    code = f"import sys; sys.argv = {argv!r}; from pipeline.cli import main; sys.exit(main())"
    subprocess.run([sys.executable, "-c", code], cwd=tree, env=_env(tree), check=True, stdout=subprocess.DEVNULL)


def cold_run(tree: Path, config: Path, data: Path, scratch: Path, name: str) -> dict[str, Any]:
    """One cold run of ``tree``'s pipeline in a fresh process and a fresh pipeline root."""
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=scratch))
    out, log = work / "run.json", work / "run.log"
    with log.open("w") as stderr:
        done = subprocess.run([sys.executable, "-c", COLD_RUN, str(config), str(data), str(work), str(out)],
                              cwd=tree, env=_env(tree), stdout=stderr, stderr=stderr)
    if done.returncode:
        sys.exit(f"{name}: the cold run failed (exit {done.returncode}); its log: {log}\n" + "".join(log.read_text().splitlines(True)[-20:]))
    return json.loads(out.read_text())


def _env(tree: Path) -> dict[str, str]:
    # PYTHONPATH comes before site-packages, where this checkout is installed (editable)
    return {**os.environ, "PYTHONPATH": str(tree)}


def main() -> None:
    """Run the arms in A B C / C B A order and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--movielens", required=True, help="directory with MovieLens' ratings.csv and movies.csv")
    parser.add_argument("--reference", default=REFERENCE_COMMIT)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three arms, every other one reversed")
    parser.add_argument("--output", default="bench/out/against_reference.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="embedpipe-reference-") as scratch_dir:
        runs, speed = _run_arms(args, Path(scratch_dir))
    _report(args, runs, speed)


def _run_arms(args: argparse.Namespace, scratch: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The reference's worktree and both data sets in ``scratch``, then the rounds of cold runs."""
    reference_tree = scratch / "reference"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(reference_tree), args.reference], check=True)
    try:
        convert_movielens(reference_tree, args.movielens, scratch / "reference-data")
        convert_movielens(ROOT, args.movielens, scratch / "data")
        shipped = ROOT / "configs" / "movielens.yaml"
        arms = {
            "reference": (reference_tree, reference_tree / "configs" / "movielens.yaml", scratch / "reference-data"),
            "shipped": (ROOT, shipped, scratch / "data"),
            "reference model": (ROOT, reference_model_config(shipped, scratch), scratch / "data"),
        }
        speed = {"before": machine_speed_in_subprocess()}
        runs = []
        for round_ in range(args.rounds):
            for name in list(arms) if round_ % 2 == 0 else list(arms)[::-1]:
                started = datetime.datetime.now().isoformat(timespec="seconds")
                runs.append({"arm": name, "started": started, **cold_run(*arms[name], scratch, name.replace(" ", "-"))})
                print(f"{started} {name}: {runs[-1]['total_s']:.1f} s", flush=True)
        speed["after"] = machine_speed_in_subprocess()
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(reference_tree)], check=False)
    return runs, speed


def _report(args: argparse.Namespace, runs: list[dict[str, Any]], speed: dict[str, Any]) -> None:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    mean = {a: _mean([r for r in runs if r["arm"] == a]) for a in arms}
    print(f"machine: {machine()}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}  this checkout: {commit}  reference: {args.reference}")
    for when, reading in speed.items():
        print(f"machine speed {when} the runs: {describe(reading)}")
    nodes = list(dict.fromkeys(n for r in runs for n in r["components_s"]))
    columns = [f"{r['arm']} {i + 1}" for i, r in enumerate(runs)] + [f"{a}, mean" for a in arms]
    values = [r["components_s"] for r in runs] + [mean[a]["components_s"] for a in arms]
    totals = [r["total_s"] for r in runs] + [mean[a]["total_s"] for a in arms]
    width = max(len(c) for c in columns) + 2
    print(f"{'component (s)':<30}" + "".join(f"{c:>{width}}" for c in columns))
    for node in nodes:
        print(f"{node:<30}" + "".join(f"{v[node]:>{width}.1f}" if node in v else f"{'-':>{width}}" for v in values))
    print(f"{'whole run':<30}" + "".join(f"{t:>{width}.1f}" for t in totals))
    print(f"{'eval AUC':<30}" + "".join(f"{r['auc']:>{width}.4f}" for r in runs))
    print(f"issue 13's target as a ratio of the reference: {TARGET_SECONDS} / {REFERENCE_SECONDS} = {TARGET_SECONDS / REFERENCE_SECONDS:.3f}")
    for a in arms[1:]:
        print(f"{a} / reference, means: {mean[a]['total_s'] / mean['reference']['total_s']:.3f}")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"machine": machine(), "machine_speed": speed, "date": datetime.datetime.now().isoformat(),
                   "commit": commit, "reference": args.reference, "runs": runs}, f, indent=2)


def _mean(runs: list[dict[str, Any]]) -> dict[str, Any]:
    nodes = runs[0]["components_s"]
    return {"total_s": sum(r["total_s"] for r in runs) / len(runs),
            "components_s": {n: sum(r["components_s"].get(n, 0.0) for r in runs) / len(runs) for n in nodes}}


if __name__ == "__main__":
    main()
