#!/usr/bin/env bash
# Compiles kernels/src with the CPU emulator (g++ 12+, C++20) and checks every kernel's logic against the CPU
# semantics; a developer check for machines without a GPU (the device check, kernels/device-check.sh, runs the real
# thing). Takes about 3 minutes on 2 cores (the decode case of 70,001 keys starts a thread per CUDA thread).
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp -d)
g++ -std=c++20 -O1 -pthread -Iinclude -Wno-unused-result -o "$out/check_kernels" check_kernels.cpp
"$out/check_kernels"
