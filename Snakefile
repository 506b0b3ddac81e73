from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/probe.smk"
include: "rules/aggregate.smk"
include: "rules/figures.smk"
include: "rules/audit.smk"


rule all:
    input:
        all_targets(),
    default_target: True
