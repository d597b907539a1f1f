# bioml: batch-effect checks and correction, embeddings and generative biology.
# Run:  snakemake --cores 2            (default config: simulated data, no download)
#       snakemake --cores 2 --configfile config/bladderbatch.yaml
# The stages live in workflow/rules/; each rule calls one thin script in
# workflow/scripts/, which calls one bioml function.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/correct.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/interface.smk"
include: "workflow/rules/flux.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
