#!/usr/bin/env bash
# Spark GPU discovery script: prints the GPUs of this machine as a Spark ResourceInformation JSON,
# {"name": "gpu", "addresses": ["0", "1", ...]}. Referenced by spark.{executor,worker}.resource.gpu.discoveryScript.
# Honours CUDA_VISIBLE_DEVICES when it is set; prints an empty address list when there is no NVIDIA driver.
set -euo pipefail

addresses=""
if [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
  addresses=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | sed '/^$/d' | sed 's/.*/"&"/' | paste -sd, -)
elif command -v nvidia-smi >/dev/null 2>&1; then
  addresses=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | sed 's/ //g' | sed '/^$/d' \
    | sed 's/.*/"&"/' | paste -sd, - || true)
fi
echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"
