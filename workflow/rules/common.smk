# Shared by every rule: config validation, paths, seeds, input functions.

import hashlib
import json

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

RUN = config["run"]
ENV = "../envs/bioml.yaml"  # the one software environment of every rule (--sdm conda)


def res(path):
    """A path under this run's results tree."""
    return f"results/{RUN}/{path}"


def logf(name):
    """A log file under this run's log tree."""
    return f"logs/{RUN}/{name}.log"


def bench(name):
    """A Snakemake benchmark file under this run's results tree."""
    return f"results/{RUN}/benchmarks/{name}.tsv"


def rule_seed(rule, **wildcards):
    """Seed of one job, derived from the global seed, the rule name and its wildcards.

    Stable across runs and machines (sha256, not Python's salted hash()).
    """
    key = json.dumps([config["seed"], rule, sorted(wildcards.items())])
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little") & 0x7FFFFFFF


def mem_for(base_mb, per_input_mb):
    """A resource function: base memory plus a multiple of the input size, grown on retry."""

    def mem(wildcards, input, attempt):
        return int((base_mb + per_input_mb * input.size_mb) * attempt)

    return mem


def runtime_for(base_min, per_input_gb_min):
    """A resource function: base runtime (minutes) plus minutes per GB of input, doubled,
    tripled... on retry (a job killed at its time limit is retried with more)."""

    def runtime(wildcards, input, attempt):
        return int((base_min + per_input_gb_min * input.size_mb / 1024) * attempt)

    return runtime


def simulate_mem_mb(wildcards, attempt):
    """Memory of the simulate rule: it has no input, so it scales with the configured size
    (about 5 bytes per simulated value were measured; 8 asked for)."""
    sim = config["data"]["simulate"]
    return int((1000 + 8e-6 * sim["n_obs"] * sim["n_vars"]) * attempt)


def ingest_input():
    """The raw input(s) of the ingest rule for the configured data source."""
    data = config["data"]
    if data["source"] == "simulate":
        return {"data": res("data/simulated.h5ad")}
    files = {"data": data["path"]}
    if data.get("sample_sheet"):
        files["sample_sheet"] = data["sample_sheet"]
    return files


def sweep_level_name(level):
    """The {level} wildcard of one sweep level: 0, 0.5, 0.9, 1."""
    return f"{float(level):g}"


def evaluate_input(wildcards):
    files = {"qc": res("qc/qc.h5ad"), "corrected": res("correct/corrected.h5ad")}
    if config["embedding"]["enabled"]:
        files["embedded"] = res("embed/embedded.h5ad")
    if config["data"]["source"] == "simulate":
        files["batch_free"] = res("evaluate/batch_free.h5ad")
    return files


def interface_structures():
    """The structure files of interface_features ([] = those bundled with bioml, found by the script)."""
    return list(config["interface"]["structures"])


def interface_training_data():
    """Training and held-out tables: simulated, or the user's table split in two."""
    kind = "table" if config["interface"]["table"] else "simulated"
    return {"train": res(f"interface/train_{kind}.tsv"), "heldout": res(f"interface/heldout_{kind}.tsv")}

def flux_table_input():
    """The user's flux table (flux.source: table), else no input (cobra samples)."""
    flux = config["flux"]
    if flux["source"] == "table":
        if not flux.get("table"):
            raise ValueError("config flux.source is 'table' but flux.table is not set")
        return flux["table"]
    return []


def final_outputs():
    """The targets of the default rule: every stage's outputs that exist so far."""
    targets = [
        res("ingest/raw.h5ad"),
        res("qc/qc.h5ad"),
        res("qc/qc_summary.tsv"),
        res("qc/qc_metrics.png"),
        res("confounding/report.json"),
        res("correct/corrected.h5ad"),
        res("batch_tests/summary.tsv"),
        res("batch_tests/pvalues.png"),
    ]
    if config["embedding"]["enabled"]:
        targets += [res("embed/embedded.h5ad"), res("embed/umap.png"), res("embed/loss.png")]
    evaluation = config["evaluation"]
    if evaluation["enabled"]:
        targets += [res(f"evaluate/{f}") for f in ("metrics.tsv", "metrics.png", "pca.png", "umap.png")]
        if config["data"]["source"] == "simulate":
            targets.append(res("evaluate/truth.tsv"))
    if evaluation["sweep_levels"]:
        targets += [res("sweep/summary.tsv"), res("sweep/sweep.png")]
    if config["interface"]["enabled"]:
        targets += [
            res("interface/real_features.tsv"),
            res("interface/history.tsv"),
            res("interface/training.png"),
            res("interface/metrics.tsv"),
            res("interface/marginals.png"),
            res("interface/projection.png"),
        ]
    if config["flux"]["enabled"]:
        targets += [
            res(f"flux/{name}")
            for name in ("model.pt", "loss.png", "metrics.tsv", "residuals.png", "marginals.png",
                         "objective.png", "latent.png")
        ]
    return targets
