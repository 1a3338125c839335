#!/usr/bin/env bash
# Reads a `frugal runs export --format mlflow` back with MLflow itself: trains a tiny run (or uses
# --store DB), exports it, and lists the "frugal" experiment's runs, params, tags and a metric's
# history through mlflow.search_runs and MlflowClient. Not run in CI (CI has no MLflow): run it
# by hand after changing track/export.cc.
#   python3 -m venv /tmp/mlvenv && /tmp/mlvenv/bin/pip install mlflow
#   scripts/check_mlflow_export.sh [build/frugal] [--store DB]
# MLFLOW_PYTHON names the Python with mlflow (default /tmp/mlvenv/bin/python).
set -euo pipefail
frugal=$(realpath "${1:-build/frugal}")
shift || true
python=${MLFLOW_PYTHON:-/tmp/mlvenv/bin/python}
work=$(mktemp -d /tmp/frugal-mlflow-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
store=""
if [[ "${1:-}" == "--store" ]]; then store=$(realpath "$2"); fi
cd "$work"
if [[ -z "$store" ]]; then
  /usr/bin/python3 - > data.csv <<'PY'
import random
random.seed(1)
print(",".join(f"x{i}" for i in range(8)) + ",label")
for _ in range(300):
    label = random.randrange(3)
    print(",".join(f"{random.gauss(1.0 if i % 3 == label else 0.0, 1):.4f}" for i in range(8)) + f",{label}")
PY
  cat > job.toml <<'TOML'
[run]
name = "mlflow-check"
seed = 1
threads = 1
store = "runs.db"
[data]
kind = "csv"
train = "data.csv"
val_fraction = 0.2
[model]
kind = "mlp"
hidden = [16]
[optim]
lr = 0.01
[train]
epochs = 3
batch_size = 16
log_every = 5
TOML
  "$frugal" train job.toml --quiet --out out >/dev/null
  store=$work/runs.db
fi
"$frugal" runs export --format mlflow "$work/mlruns" --store "$store"
# MLflow 3.x keeps the file store in maintenance mode: it reads it when told to.
MLFLOW_ALLOW_FILE_STORE=true "$python" - "$work/mlruns" <<'PY'
import sys, warnings
warnings.filterwarnings("ignore")
import mlflow
from mlflow.tracking import MlflowClient
root = sys.argv[1]
mlflow.set_tracking_uri("file:" + root)
print("mlflow", mlflow.__version__)
client = MlflowClient(tracking_uri="file:" + root)
print("experiments:", [(e.experiment_id, e.name) for e in client.search_experiments()])
runs = mlflow.search_runs(experiment_names=["frugal"])
print("search_runs:", len(runs), "runs; columns", len(runs.columns))
for _, row in runs.iterrows():
    run = client.get_run(row["run_id"])
    info, data = run.info, run.data
    print(f"run {info.run_id} name={info.run_name!r} status={info.status} start={info.start_time} end={info.end_time}")
    print("  params:", len(data.params), {k: data.params[k] for k in sorted(data.params)[:5]}, "...")
    print("  tags:", {k: v for k, v in sorted(data.tags.items()) if k.startswith(("frugal.", "mlflow.runName"))})
    print("  metrics (latest):", {k: round(v, 6) for k, v in sorted(data.metrics.items())[:8]}, "...")
    history = client.get_metric_history(info.run_id, "train.loss")
    print(f"  train.loss history: {len(history)} points, steps {[m.step for m in history[:5]]}..., "
          f"first {history[0].value:.4f} last {history[-1].value:.4f}")
    assert info.status in ("FINISHED", "RUNNING", "FAILED", "KILLED")
    assert len(history) > 1 and all(a.step < b.step for a, b in zip(history, history[1:]))
print("OK: MLflow reads the export")
PY
