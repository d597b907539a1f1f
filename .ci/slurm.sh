#!/usr/bin/env bash
# .ci/slurm.sh - the pipeline through a real SLURM cluster (called by .ci/run; needs root).
#
# 1. brings up a single-node SLURM 22.05 (../shared/slurm/slurm-up.sh; shut down on exit);
# 2. runs the default DAG on config/ci.yaml through the SLURM executor plugin
#    (--workflow-profile profiles/slurm-local) into results/ci/, logs/ci/;
# 3. checks that every job went through SLURM (job ids in Snakemake's output, one SLURM log
#    per job under logs/ci/slurm/, COMPLETED in sacct);
# 4. runs the same config locally (--cores 2) in a copy of the workflow and compares every
#    .h5ad/.tsv/.json/.pt of the two runs by value (.ci/compare_runs.py);
# 5. a failing job: a truncated gzip table as input; the ingest job must fail through SLURM,
#    Snakemake exit non-zero, the rule's log name the cause, no output be left behind.
#
# Environment: BIN (default .venv/bin: snakemake and python of the project),
# SHARED (default ../shared), SLURMLAB_BASE (default /tmp/slurmlab).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=${BIN:-$REPO/.venv/bin}
SHARED=${SHARED:-$REPO/../shared}
SLURM_DIR=$SHARED/slurm
CONFIG=config/ci.yaml
RUN=ci
T0=$(date +%s)

say() { printf '[slurm.sh +%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
fail() { say "FAIL: $*"; exit 1; }

if [ ! -f "$SLURM_DIR/slurm-up.sh" ]; then
  say "SKIPPED: $SLURM_DIR/slurm-up.sh is absent, so no SLURM cluster can be started here"
  exit 0
fi
[ "$(id -u)" = 0 ] || fail "slurm-up.sh must run as root (CI runs as root)"
[ -x "$BIN/snakemake" ] || fail "no snakemake at $BIN (set BIN)"

WORK=$(mktemp -d /tmp/bioml-slurm-ci.XXXXXX)
LOCAL_PID=
cleanup() {
  status=$?
  if [ -n "$LOCAL_PID" ] && kill -0 "$LOCAL_PID" 2>/dev/null; then kill "$LOCAL_PID" || true; wait "$LOCAL_PID" || true; fi
  say "shutting the cluster down"
  bash "$SLURM_DIR/slurm-down.sh" || true
  rm -rf "$WORK"
  say "total $(( $(date +%s) - T0 )) s, exit status $status"
}
trap cleanup EXIT

say "bringing up SLURM"
bash "$SLURM_DIR/slurm-up.sh"
sinfo

# ---------------------------------------------------------------- the local run, in the background
# The SLURM run mostly waits (job start-up, status polling), so the local run of the same
# config goes beside it, in a copy of the workflow (same run name, same relative paths).
say "local run of the same config, in the background: snakemake --cores 2 (in a copy of the workflow)"
mkdir -p "$WORK/local"
cp -r Snakefile workflow config profiles "$WORK/local/"
LOCAL_T0=$(date +%s)
(cd "$WORK/local" && exec "$BIN/snakemake" --cores 2 --configfile "$CONFIG" > "$WORK/local_run.log" 2>&1) &
LOCAL_PID=$!

# ---------------------------------------------------------------- the SLURM run
rm -rf "results/$RUN" "logs/$RUN"
say "SLURM run: snakemake --workflow-profile profiles/slurm-local --configfile $CONFIG"
t=$(date +%s)
"$BIN/snakemake" --workflow-profile profiles/slurm-local --configfile "$CONFIG" --verbose \
  --slurm-logdir "logs/$RUN/slurm" > "$WORK/slurm_run.log" 2>&1 \
  || { tail -60 "$WORK/slurm_run.log"; fail "the SLURM run failed"; }
SLURM_S=$(( $(date +%s) - t ))
cp "$WORK/slurm_run.log" "logs/$RUN/snakemake_slurm.log"
grep -E "sbatch call:|submitted with SLURM jobid" "$WORK/slurm_run.log" \
  | sed -E 's/ -D .*//; s/--job-name [^ ]+ --output [^ ]+ //; s/^/    /'
say "SLURM run done in $SLURM_S s"
"$BIN/python" .ci/check_slurm_jobs.py "$WORK/slurm_run.log" "logs/$RUN/slurm" \
  || fail "not every job went through SLURM"
grep -h "device auto" "logs/$RUN"/*.log | sed 's/^/    /' || true

# ---------------------------------------------------------------- the local run, compared
wait "$LOCAL_PID" || { LOCAL_PID=; tail -60 "$WORK/local_run.log"; fail "the local run failed"; }
LOCAL_PID=
say "local run done (started with the SLURM run; awaited $(( $(date +%s) - LOCAL_T0 )) s after its start)"
"$BIN/python" .ci/compare_runs.py "results/$RUN" "$WORK/local/results/$RUN" \
  || fail "the SLURM run's results differ from the local run's"

# ---------------------------------------------------------------- a failing job
say "failing job: a truncated gzip table as input"
BAD=$WORK/bad
mkdir -p "$BAD"
"$BIN/python" - "$BAD" <<'EOF'
import gzip, sys
from pathlib import Path
d = Path(sys.argv[1])
genes = [f"g{i}" for i in range(50)]
samples = [f"s{j}" for j in range(12)]
rows = ["gene\t" + "\t".join(samples)] + [g + "\t" + "\t".join(str(i + j) for j in range(12))
                                           for i, g in enumerate(genes)]
data = gzip.compress(("\n".join(rows) + "\n").encode())
(d / "expr.tsv.gz").write_bytes(data[: len(data) // 2])   # cut in the middle: corrupt
(d / "samples.tsv").write_text("sample_id\tbatch\tcondition\n"
                               + "".join(f"s{j}\tb{j % 2}\tc{j % 3}\n" for j in range(12)))
(d / "bad.yaml").write_text(
    "run: ci_fail\n"
    f"data:\n  source: table\n  path: {d / 'expr.tsv.gz'}\n  sample_sheet: {d / 'samples.tsv'}\n"
    # only the stages that read the table: the sweep, flux and interface jobs are independent
    # of it and would finish (validly) beside the failing ingest job
    "evaluation:\n  sweep_levels: []\nflux:\n  enabled: false\ninterface:\n  enabled: false\n"
)
EOF
rm -rf results/ci_fail logs/ci_fail
t=$(date +%s)
set +e
"$BIN/snakemake" --workflow-profile profiles/slurm-local --configfile "$CONFIG" "$BAD/bad.yaml" \
  --slurm-logdir logs/ci_fail/slurm > "$WORK/fail_run.log" 2>&1
rc=$?
set -e
say "failing run: exit status $rc in $(( $(date +%s) - t )) s"
[ "$rc" != 0 ] || { tail -40 "$WORK/fail_run.log"; fail "a corrupt input did not fail the run"; }
"$BIN/python" .ci/check_slurm_jobs.py "$WORK/fail_run.log" logs/ci_fail/slurm --expect-failed ingest \
  || fail "the failing job did not go through SLURM"
grep -q "corrupt or truncated gzip" logs/ci_fail/ingest.log \
  || { cat logs/ci_fail/ingest.log; fail "the rule's log does not name the cause"; }
sed 's/^/    ingest.log: /' logs/ci_fail/ingest.log | grep -i error
grep -q "logs/ci_fail/ingest.log" "$WORK/fail_run.log" \
  || fail "Snakemake's output does not point at the rule's log"
left=$(find results/ci_fail -type f 2>/dev/null | grep -v /benchmarks/ || true)
[ -z "$left" ] || fail "outputs left after the failure: $left"
cp "$WORK/fail_run.log" logs/ci_fail/snakemake_slurm.log
say "the failure was reported, its log names the cause, nothing was left behind"

say "SLURM CI passed (SLURM run $SLURM_S s)"
