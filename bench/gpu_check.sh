#!/usr/bin/env bash
# The GPU check, one command, for a machine with NVIDIA GPUs (driver, NVML and a CUDA build of
# the pinned torch): starts the whole stack on embedded PostgreSQL and Redis, trains Iris with
# gpus_per_node=1 over NCCL, runs two 1-GPU jobs at once and shows they got different GPUs, and
# prints each GPU's health as the nodes page shows it. Paste its output into bench/RESULTS.md.
#
#   bench/gpu_check.sh
#
# Without an NVIDIA GPU every check is skipped and says why.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec bin/dev gpu-check "$@"
