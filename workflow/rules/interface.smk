# Stage: protein-interface features and the interface GAN (bioml.interface).
# Default: the GAN trains on simulated feature vectors (known distribution) and is scored
# against held-out simulated vectors; the bundled complexes' real vectors are shown beside.

rule interface_features:
    """Interface features of the configured (default: bundled) complexes, one row per chain pair."""
    input:
        structures=interface_structures(),
    output:
        table=res("interface/real_features.tsv"),
    log:
        logf("interface_features"),
    params:
        interface=config["interface"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/interface_features.py"


rule interface_simulate:
    """Simulated feature vectors from a known distribution (training and held-out sets)."""
    output:
        train=res("interface/train_simulated.tsv"),
        heldout=res("interface/heldout_simulated.tsv"),
        truth=res("interface/simulation_truth.json"),
    log:
        logf("interface_simulate"),
    params:
        interface=config["interface"],
        seed=rule_seed("interface_simulate"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        ENV
    script:
        "../scripts/interface_simulate.py"


rule interface_table:
    """A user feature table, validated and split into training and held-out rows."""
    input:
        table=config["interface"]["table"] or [],
    output:
        train=res("interface/train_table.tsv"),
        heldout=res("interface/heldout_table.tsv"),
    log:
        logf("interface_table"),
    params:
        interface=config["interface"],
        seed=rule_seed("interface_table"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        ENV
    script:
        "../scripts/interface_table.py"


rule interface_gan:
    """Train the Wasserstein GAN (spectral-norm critic or WGAN-GP) through bioml.train."""
    input:
        train=lambda wc: interface_training_data()["train"],
    output:
        model=res("interface/gan.pt"),
        history=res("interface/history.tsv"),
        loss_png=report(
            res("interface/training.png"),
            caption="../report/interface_training.rst",
            category="6. Interface GAN",
        ),
    log:
        logf("interface_gan"),
    benchmark:
        bench("interface_gan")
    params:
        interface=config["interface"],
        train=config["train"],
        seed=rule_seed("interface_gan"),
    threads: 1  # tiny MLPs: a second intra-op thread only contends
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=0,
    conda:
        ENV
    script:
        "../scripts/interface_gan.py"


rule interface_evaluate:
    """Score generated vectors against held-out ones; marginals, PCA, spectral-norm check."""
    input:
        unpack(lambda wc: interface_training_data()),
        model=res("interface/gan.pt"),
        real=res("interface/real_features.tsv"),
    output:
        metrics=report(
            res("interface/metrics.tsv"),
            caption="../report/interface_metrics.rst",
            category="6. Interface GAN",
        ),
        ks=res("interface/ks_per_feature.tsv"),
        generated=res("interface/generated.tsv"),
        marginals_png=report(
            res("interface/marginals.png"),
            caption="../report/interface_marginals.rst",
            category="6. Interface GAN",
        ),
        projection_png=report(
            res("interface/projection.png"),
            caption="../report/interface_projection.rst",
            category="6. Interface GAN",
        ),
    log:
        logf("interface_evaluate"),
    benchmark:
        bench("interface_evaluate")
    params:
        interface=config["interface"],
        seed=rule_seed("interface_evaluate"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        ENV
    script:
        "../scripts/interface_evaluate.py"
