#!/usr/bin/env bash
# Runs one experiment on every worker of a Cloud TPU pod slice: the same command everywhere, as JAX expects.
# jax.distributed discovers the coordinator and process ids on TPU VMs by itself.
#
#   scripts/launch_tpu_pod.sh TPU_NAME ZONE experiments/sft_toy.py --config.train.steps=2000
#
# Assumes the repository is checked out and installed (`pip install -e .`) at ~/alignjax on every worker
# (e.g. with `gcloud compute tpus tpu-vm ssh ... --worker=all --command "git clone ... && pip install -e ."`).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 TPU_NAME ZONE EXPERIMENT_FILE [--config.key=value ...]" >&2
  exit 2
fi
tpu=$1 zone=$2 experiment=$3
shift 3
printf -v overrides ' %q' "$@"
gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all --command \
  "cd ~/alignjax && python -m alignjax.run --config $experiment --config.distributed.enabled=True$overrides"
