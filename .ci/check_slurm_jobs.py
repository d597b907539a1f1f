#!/usr/bin/env python
"""Check from Snakemake's output that every job of a run went through SLURM.

    python .ci/check_slurm_jobs.py SNAKEMAKE_OUTPUT SLURM_LOGDIR [--expect-failed RULE]

- Snakemake's "Job stats" table says how many jobs of each rule the run has;
- each of them (bar the target rule ``all``, which runs nothing) must appear in a line
  "Job N has been submitted with SLURM jobid J (log: .../rule_<rule>/...)";
- every SLURM job id has its own log file under SLURM_LOGDIR;
- ``sacct`` (the controller's accounting) lists every job id as COMPLETED, or, with
  ``--expect-failed RULE``, that rule's job as FAILED (and nothing else as completed
  after it).

Prints one line per job and exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+?)\)")
LOCAL_RULES = {"all"}


def job_stats(text: str) -> Counter:
    """The first 'Job stats' table of a Snakemake output: rule -> job count."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "Job stats:":
            counts = Counter()
            for row in lines[i + 3:]:
                parts = row.split()
                if len(parts) != 2 or parts[0] == "total":
                    break
                counts[parts[0]] = int(parts[1])
            return counts
    raise SystemExit("no 'Job stats:' table in the Snakemake output")


def sacct_states(ids: list[str]) -> dict[str, str]:
    """JobID -> State from the accounting database (it may lag a few seconds)."""
    states: dict[str, str] = {}
    for _ in range(15):
        r = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(ids)],
                           capture_output=True, text=True)
        states = dict(line.split("|", 1) for line in r.stdout.split() if "|" in line)
        if all(states.get(i, "PENDING") not in ("PENDING", "RUNNING", "COMPLETING") for i in ids):
            break
        time.sleep(1)
    return states


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", type=Path, help="Snakemake's console output (stdout + stderr)")
    ap.add_argument("logdir", type=Path, help="the --slurm-logdir of the run")
    ap.add_argument("--expect-failed", metavar="RULE")
    args = ap.parse_args(argv)
    text = args.output.read_text()
    expected = {r: n for r, n in job_stats(text).items() if r not in LOCAL_RULES}
    subs = [(int(j), sid, log) for j, sid, log in SUBMITTED.findall(text)]
    rule_of = {sid: re.search(r"rule_([^/]+)", log).group(1) for _, sid, log in subs}
    by_rule = Counter(rule_of.values())
    ok = True
    print(f"{len(subs)} SLURM submissions; jobs per rule expected {dict(expected)}")
    if args.expect_failed:
        # The run stops at the failure: the failed rule must be submitted; the rest may not be.
        if by_rule.get(args.expect_failed, 0) < 1:
            print(f"FAIL: rule {args.expect_failed} was not submitted to SLURM")
            ok = False
    else:
        for rule, n in sorted(expected.items()):
            if by_rule.get(rule, 0) != n:
                print(f"FAIL: rule {rule}: {n} job(s) in the DAG, {by_rule.get(rule, 0)} submitted to SLURM")
                ok = False
        extra = set(by_rule) - set(expected)
        if extra:
            print(f"FAIL: submitted rules not in the job stats: {sorted(extra)}")
            ok = False
    ids = [sid for _, sid, _ in subs]
    states = sacct_states(ids) if ids else {}
    for _, sid, log in subs:
        rule = rule_of[sid]
        state = states.get(sid, "?")
        logfile = next(args.logdir.rglob(f"{sid}.log"), None)
        want = "FAILED" if rule == args.expect_failed else "COMPLETED"
        good = state == want and logfile is not None
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} rule {rule:<14} SLURM job {sid:>5} {state:<10} "
              f"log {logfile if logfile else 'MISSING under ' + str(args.logdir)}")
    print("every job went through SLURM" if ok else "SLURM job checks FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
