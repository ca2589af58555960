#!/usr/bin/env bash
# The one GPU check of the project: runs the backend contract tests on the GPU, then prints the timing table of
# io.csattention.device.cuda.GpuBench (index build ms and decode us per query at 32K and 128K tokens for GPU
# csattention, GPU full attention and CPU csattention; decode bandwidth against the card's copy bandwidth).
#
#   kernels/device-check.sh --prepare   on a build machine (Maven, ~/.m2 as the build left it; network only for the
#                                       first download of the JUnit console launcher): builds and stages everything
#                                       the check needs under kernels/target/device-check (about 30 MB)
#   kernels/device-check.sh             on the GPU machine: runs the check from kernels/target/device-check; when that
#                                       folder is missing and mvn is on PATH it prepares it first
#
# Assumptions on the GPU machine: this repository's working tree with kernels/target/device-check carried along
# (it is git-ignored), a JDK 17+ `java` on PATH, an NVIDIA driver new enough for the committed PTX (see
# kernels/ptx/kernels.properties: PTX ISA 9.0 needs CUDA 13 / driver r580+; the check says so if it is older).
# No Maven, network or nvcc needed there. Finishes in about 2-4 minutes; every step has a timeout, all together
# under 9 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=kernels/target/device-check
JUNIT_CONSOLE_VERSION=1.14.1
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.9.0
JAVA_FLAGS=(--add-modules=jdk.incubator.vector -Xmx24g)

prepare() {
  set -e
  echo "== preparing $STAGE"
  rm -rf "$STAGE"
  mkdir -p "$STAGE/lib"
  local copy_dependencies=(-q -DskipTests package "$DEPENDENCY_PLUGIN:copy-dependencies" -pl spark-csattention -am
    -DincludeScope=runtime -DoutputDirectory="$PWD/$STAGE/lib")
  mvn -o "${copy_dependencies[@]}" 2>/dev/null || mvn "${copy_dependencies[@]}"
  cp spark-csattention/target/spark-csattention-*.jar "$STAGE/lib/"
  rm -f "$STAGE"/lib/csattention-kernels-*.jar
  cp kernels/target/csattention-kernels-*.jar "$STAGE/lib/"
  jar cf "$STAGE/csattention-kernel-tests.jar" -C spark-csattention/target/test-classes io/csattention/kernel
  local console="org.junit.platform:junit-platform-console-standalone:$JUNIT_CONSOLE_VERSION"
  mvn -o -q "$DEPENDENCY_PLUGIN:copy" -Dartifact="$console" -DoutputDirectory="$PWD/$STAGE" 2>/dev/null \
    || mvn -q "$DEPENDENCY_PLUGIN:copy" -Dartifact="$console" -DoutputDirectory="$PWD/$STAGE"
  du -sh "$STAGE"
  set +e
}

if [[ "${1:-}" == "--prepare" ]]; then
  prepare
  exit 0
fi
if [[ ! -d "$STAGE" ]]; then
  if command -v mvn >/dev/null 2>&1; then
    prepare
  else
    echo "device-check: $STAGE is missing and mvn is not on PATH; run kernels/device-check.sh --prepare on a build machine and carry $STAGE" >&2
    exit 2
  fi
fi

CLASSPATH_JARS=$(ls "$STAGE"/lib/*.jar | tr '\n' ':')
status=0

echo "== machine"
java -version 2>&1 | head -1
timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv,noheader \
  || echo "nvidia-smi: not available"
grep -E '^(ptx\.|driver\.|nvcc\.version)' kernels/ptx/kernels.properties

echo "== GPU contract tests (io.csattention.kernel and io.csattention.device: same cases on cpu and gpu)"
tests_log=$(mktemp)
timeout 180 java "${JAVA_FLAGS[@]}" -jar "$STAGE"/junit-platform-console-standalone-*.jar execute \
  --class-path "$STAGE/csattention-kernel-tests.jar:$CLASSPATH_JARS" --select-package io.csattention.kernel --select-package io.csattention.device \
  --exclude-classname '.*ArchitectureTest' \
  --details tree --disable-banner --disable-ansi-colors 2>&1 | tee "$tests_log"
if [[ ${PIPESTATUS[0]} -ne 0 ]]; then
  echo "device-check: contract tests FAILED" >&2
  status=1
fi
# assumption failures show as "gpu ■ Assumption failed: ..." in the tree; on a GPU machine no gpu case may be skipped
skipped=$(grep -c '\] gpu ■' "$tests_log")
if [[ "$skipped" != "0" ]]; then
  echo "device-check: $skipped GPU test cases were SKIPPED: the GPU was not usable for them (reasons above)" >&2
  status=1
fi

echo "== timing (GpuBench, backend gpu)"
timeout 420 java "${JAVA_FLAGS[@]}" -cp "$CLASSPATH_JARS" io.csattention.device.cuda.GpuBench gpu 32768,131072
bench=$?
if [[ $bench -ne 0 ]]; then
  echo "device-check: timing FAILED (exit $bench; 124 means it ran past its 420 s timeout)" >&2
  status=1
fi
exit $status
