# Stage 6: the flux VAE -- feasible metabolic flux states of a cobra model.
#
# flux_sample   cobra OptGP (seeded, one process) -> training set (samples.h5ad), an
#               independent held-out set and a second independent set (the noise floor);
#               with flux.source: table, the user's table is validated and split instead
# flux_vae      train bioml.flux.FluxVAE through bioml.train
# flux_evaluate generate, check feasibility, compare with held-out vs the noise floor


wildcard_constraints:
    split="samples|heldout|noise",


rule flux_sample:
    """Draw feasible fluxes with cobra's OptGP sampler (or split a validated flux table)."""
    input:
        table=flux_table_input(),
    output:
        h5ad=res("flux/{split}.h5ad"),
    log:
        logf("flux_sample_{split}"),
    benchmark:
        bench("flux_sample_{split}")
    params:
        flux=config["flux"],
        seed=lambda wc: rule_seed("flux_sample", split=wc.split),
        split_seed=rule_seed("flux_split"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    conda:
        ENV
    script:
        "../scripts/flux_sample.py"


rule flux_vae:
    """Train the flux VAE (null-space decoder by default) on the training fluxes."""
    input:
        h5ad=res("flux/samples.h5ad"),
    output:
        model=res("flux/model.pt"),
        history=res("flux/history.tsv"),
        loss_png=report(
            res("flux/loss.png"),
            caption="../report/flux_loss.rst",
            category="6. Flux VAE",
        ),
    log:
        logf("flux_vae"),
    benchmark:
        bench("flux_vae")
    params:
        flux=config["flux"],
        train=config["train"],
        seed=rule_seed("flux_vae"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=0,
    conda:
        ENV
    script:
        "../scripts/flux_vae.py"


rule flux_evaluate:
    """Generate fluxes; mass balance, bounds and distribution metrics vs the noise floor; figures."""
    input:
        model=res("flux/model.pt"),
        train=res("flux/samples.h5ad"),
        heldout=res("flux/heldout.h5ad"),
        noise=res("flux/noise.h5ad"),
    output:
        generated=res("flux/generated.h5ad"),
        metrics=report(
            res("flux/metrics.tsv"),
            caption="../report/flux_metrics.rst",
            category="6. Flux VAE",
        ),
        baselines=res("flux/baselines.tsv"),
        residuals_png=report(
            res("flux/residuals.png"),
            caption="../report/flux_residuals.rst",
            category="6. Flux VAE",
        ),
        marginals_png=report(
            res("flux/marginals.png"),
            caption="../report/flux_marginals.rst",
            category="6. Flux VAE",
        ),
        objective_png=report(
            res("flux/objective.png"),
            caption="../report/flux_objective.rst",
            category="6. Flux VAE",
        ),
        latent_png=report(
            res("flux/latent.png"),
            caption="../report/flux_latent.rst",
            category="6. Flux VAE",
        ),
    log:
        logf("flux_evaluate"),
    benchmark:
        bench("flux_evaluate")
    params:
        flux=config["flux"],
        seed=rule_seed("flux_evaluate"),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    script:
        "../scripts/flux_evaluate.py"
