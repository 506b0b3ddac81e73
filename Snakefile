from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/aggregate.smk"
include: "rules/figures.smk"
include: "rules/audit.smk"


# On a cluster, only data preparation and training go to the scheduler; tables, figures, the
# audit and moving a group's outputs take seconds and run where snakemake runs (each such rule
# says `localrule: True`).


rule all:
    localrule: True
    input:
        all_targets(),
    default_target: True
