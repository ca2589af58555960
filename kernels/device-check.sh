#!/usr/bin/env bash
# The one GPU check of the project: runs the kernel and decode-backend contract tests (the same cases on the CPU and
# on the GPU), then prints the timing table of the gpu-bench command (io.csattention.jobs.GpuBenchCommand, run alone
# without the Spark classes; the measurements are io.csattention.device.cuda.GpuBench's: index build ms and decode us per
# query and head at 128K tokens, 8 heads resident at once (K and V 1 GB, far past the L2), wall clock and kernel time by
# CUDA events, for GPU csattention, the exact GPU full attentions (flash-decoding per query, tiled, block GEMMs at
# several batch sizes, with the crossover batch) and CPU csattention; decode bandwidth against the card's copy
# bandwidth).
#
#   kernels/device-check.sh --prepare     on a build machine (JDK 17 with jlink, Maven, ~/.m2 as the build left it):
#                                         stages under kernels/target/device-check everything the check needs: a
#                                         jlinked Java runtime with only the modules it uses, the project's jars, JCuda
#                                         with its linux-x86_64 natives only, the test classes and the JUnit console
#   kernels/device-check.sh               on the GPU machine (no Java, Maven or network needed there): runs the check
#                                         with that runtime; fails when a GPU case is skipped or when no test ran
#   kernels/device-check.sh --no-device   here (CI): runs the same bundle and expects what a machine without a GPU
#                                         gives (every CPU case passing, every GPU case skipped for want of a
#                                         driver, the timing table saying the GPU is unavailable), so the bundle
#                                         keeps working between GPU sessions
#
# With $OUT set, the JUnit XML reports and the output go there. Every step has a timeout; all under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=kernels/target/device-check
JUNIT_CONSOLE_VERSION=1.14.1
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.9.0
JAVA_FLAGS=(--add-modules=jdk.incubator.vector -Xmx24g)
# what the check's classes use (jdeps over the staged jars), plus jdk.zipfs for JUnit's class-path scanning of jars
# and java.xml for its XML reports
JRE_MODULES=java.base,java.logging,java.management,java.xml,jdk.zipfs,jdk.incubator.vector,jdk.unsupported

prepare() {
  set -e
  echo "== preparing $STAGE"
  rm -rf "$STAGE"
  mkdir -p "$STAGE/lib"
  local copy_dependencies=(-q -DskipTests package "$DEPENDENCY_PLUGIN:copy-dependencies" -pl spark-csattention -am
    -DincludeScope=runtime -DoutputDirectory="$PWD/$STAGE/lib")
  mvn -o "${copy_dependencies[@]}" 2>/dev/null || mvn "${copy_dependencies[@]}"
  if [[ ! -d spark-csattention/target/test-classes/io/csattention/device ]]; then
    mvn -o -q -DskipTests test-compile -pl spark-csattention -am 2>/dev/null || mvn -q -DskipTests test-compile -pl spark-csattention -am
  fi
  cp spark-csattention/target/spark-csattention-*.jar "$STAGE/lib/"
  # the gpu-bench command's classes alone (it runs without Spark) and picocli, which parses its flags
  mvn -o -q -DskipTests compile -pl jobs -am 2>/dev/null || mvn -q -DskipTests compile -pl jobs -am
  (cd jobs/target/classes && jar cf "$OLDPWD/$STAGE/lib/csattention-gpu-bench.jar" \
    io/csattention/jobs/GpuBenchCommand*.class io/csattention/jobs/DeviceOption*.class \
    io/csattention/jobs/CommandRunner*.class io/csattention/jobs/UserErrors*.class \
    io/csattention/jobs/NumericOptions*.class)
  local picocli
  picocli="info.picocli:picocli:$(sed -n 's:.*<picocli.version>\(.*\)</picocli.version>.*:\1:p' pom.xml)"
  mvn -o -q "$DEPENDENCY_PLUGIN:copy" -Dartifact="$picocli" -DoutputDirectory="$PWD/$STAGE/lib" 2>/dev/null \
    || mvn -q "$DEPENDENCY_PLUGIN:copy" -Dartifact="$picocli" -DoutputDirectory="$PWD/$STAGE/lib"
  rm -f "$STAGE"/lib/csattention-kernels-*.jar
  cp kernels/target/csattention-kernels-*.jar "$STAGE/lib/"
  # JCuda loads the natives of the machine's platform only, and the project uses the driver API alone: keep the
  # linux-x86_64 JCudaDriver library (it needs only the driver's libcuda.so.1), drop nvrtc, nvPTX and the runtime
  find "$STAGE/lib" -name 'jcuda-natives-*.jar' ! -name '*linux-x86_64*' -delete
  local natives unpacked
  natives=$(ls "$PWD/$STAGE"/lib/jcuda-natives-*linux-x86_64.jar)
  unpacked=$(mktemp -d)
  (cd "$unpacked" && jar xf "$natives" && find lib -name '*.so' ! -name 'libJCudaDriver-*' -delete \
    && rm "$natives" && jar --create --file "$natives" --manifest META-INF/MANIFEST.MF lib)
  rm -rf "$unpacked"
  # the two packages under test, and the core's test helpers they use (ExactReference); only the first two run
  jar cf "$STAGE/csattention-kernel-tests.jar" -C spark-csattention/target/test-classes io/csattention/kernel \
    -C spark-csattention/target/test-classes io/csattention/device \
    -C spark-csattention/target/test-classes io/csattention/core
  local console="org.junit.platform:junit-platform-console-standalone:$JUNIT_CONSOLE_VERSION"
  mvn -o -q "$DEPENDENCY_PLUGIN:copy" -Dartifact="$console" -DoutputDirectory="$PWD/$STAGE" 2>/dev/null \
    || mvn -q "$DEPENDENCY_PLUGIN:copy" -Dartifact="$console" -DoutputDirectory="$PWD/$STAGE"
  local strip=()
  if command -v objcopy >/dev/null 2>&1; then
    strip=(--strip-native-debug-symbols "objcopy=$(command -v objcopy)")
  fi
  jlink --add-modules "$JRE_MODULES" --strip-debug "${strip[@]}" --no-man-pages --no-header-files --compress=2 \
    --output "$STAGE/jre"
  du -sh "$STAGE"
  set +e
}

if [[ "${1:-}" == "--prepare" ]]; then
  prepare
  exit 0
fi
EXPECT_DEVICE=1
if [[ "${1:-}" == "--no-device" ]]; then
  EXPECT_DEVICE=0
fi
if [[ ! -d "$STAGE" ]]; then
  if command -v mvn >/dev/null 2>&1; then
    prepare
  else
    echo "device-check: $STAGE is missing and mvn is not on PATH; run kernels/device-check.sh --prepare on a build machine and carry $STAGE" >&2
    exit 2
  fi
fi

JAVA="$STAGE/jre/bin/java"
if [[ ! -x "$JAVA" ]]; then
  echo "device-check: $JAVA is missing; run kernels/device-check.sh --prepare" >&2
  exit 2
fi
CLASSPATH_JARS=$(ls "$STAGE"/lib/*.jar | tr '\n' ':')
CONSOLE=$(ls "$STAGE"/junit-platform-console-standalone-*.jar)
REPORTS=${OUT:-$(mktemp -d)}/device-check-reports
mkdir -p "$REPORTS"
status=0

echo "== machine"
"$JAVA" -version 2>&1 | head -1
timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv,noheader \
  || echo "nvidia-smi: not available"
grep -E '^(ptx\.|driver\.|nvcc\.version)' kernels/ptx/kernels.properties

echo "== GPU contract tests (io.csattention.kernel and io.csattention.device: same cases on cpu and gpu)"
tests_log=$(mktemp)
# -cp and the launcher's main class (not -jar): tests that start a child JVM pass it java.class.path, which must hold
# the test classes; the ASCII theme marks a skipped (aborted) case [A]
timeout 240 "$JAVA" "${JAVA_FLAGS[@]}" -cp "$CONSOLE:$STAGE/csattention-kernel-tests.jar:$CLASSPATH_JARS" \
  org.junit.platform.console.ConsoleLauncher execute \
  --select-package io.csattention.kernel --select-package io.csattention.device \
  --exclude-classname '.*ArchitectureTest' --fail-if-no-tests --reports-dir "$REPORTS" \
  --details tree --details-theme ascii --disable-banner --disable-ansi-colors 2>&1 | tee "$tests_log"
if [[ ${PIPESTATUS[0]} -ne 0 ]]; then
  echo "device-check: contract tests FAILED (or none ran)" >&2
  status=1
fi
succeeded=$(grep -oE '[0-9]+ tests successful' "$tests_log" | grep -oE '^[0-9]+')
skipped=$(grep -cE 'gpu.*\[A\]|\[A\].*gpu' "$tests_log")
echo "device-check: ${succeeded:-0} test cases passed, $skipped GPU cases skipped"
if [[ "${succeeded:-0}" == "0" ]]; then
  echo "device-check: no test ran" >&2
  status=1
fi
if [[ $EXPECT_DEVICE == 1 && "$skipped" != "0" ]]; then
  echo "device-check: $skipped GPU test cases were SKIPPED: the GPU was not usable for them (reasons above)" >&2
  status=1
fi
if [[ $EXPECT_DEVICE == 0 && "$skipped" == "0" ]]; then
  echo "device-check: --no-device expects the GPU cases to be skipped here, none was" >&2
  status=1
fi

echo "== timing (gpu-bench: --device gpu, or auto with --no-device)"
if [[ $EXPECT_DEVICE == 1 ]]; then
  timeout 420 "$JAVA" "${JAVA_FLAGS[@]}" -cp "$CLASSPATH_JARS" io.csattention.jobs.GpuBenchCommand --device gpu --tokens 131072 --heads 8
else
  timeout 120 "$JAVA" "${JAVA_FLAGS[@]}" -Xmx2g -cp "$CLASSPATH_JARS" io.csattention.jobs.GpuBenchCommand --device auto --tokens 4096
fi
bench=$?
if [[ $bench -ne 0 ]]; then
  echo "device-check: timing FAILED (exit $bench; 124 means it ran past its 420 s timeout)" >&2
  status=1
fi
exit $status
