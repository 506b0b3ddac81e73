# `snakemake -f audit`: the grid's counts, cost and status, without running anything.
# It reads results/ as it is now, hence forced (-f) rather than scheduled.


rule audit:
    localrule: True
    output:
        md="results/audit/grid.md",
        csv="results/audit/grid.csv",
    params:
        config=config,
        # the config file each section came from: a mismatch names the file to fix
        sources=CONFIG_SOURCES,
        # measured run costs for the GPU-hour estimate (benchmarks/bench_compile.py)
        benchmarks=f"{workflow.basedir}/benchmarks/results",
        # the cluster profile, whose `jobs:` (jobs at once) sets the storage peak
        profile=f"{workflow.basedir}/profiles/slurm/config.yaml",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/audit.log",
    script:
        "../workflow/scripts/audit.py"
