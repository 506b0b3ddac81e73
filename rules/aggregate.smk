rule runs_table:
    input:
        metrics=metrics_files(),
    output:
        parquet="results/tables/runs.parquet",
        csv="results/tables/runs.csv",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/runs_table.log",
    script:
        "../workflow/scripts/runs_table.py"


rule warmdown_tables:
    input:
        metrics=metrics_files(),
    output:
        by_warmdown="results/tables/loss_by_warmdown.csv",
        optimal="results/tables/optimal_warmdown.csv",
        paired="results/tables/paired_tests.csv",
        regimes="results/tables/regimes.csv",
    params:
        alpha=config["analysis"]["alpha"],
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/warmdown_tables.log",
    script:
        "../workflow/scripts/warmdown_tables.py"


rule penalty_tables:
    input:
        metrics=metrics_files(penalty_runs),
    output:
        penalty="results/tables/penalty.csv",
        fit="results/tables/penalty_fit.csv",
    params:
        bits=config["analysis"]["penalty_bits"],
        heldout_sizes=config["analysis"]["heldout_sizes"],
        alpha=config["analysis"]["alpha"],
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/penalty_tables.log",
    script:
        "../workflow/scripts/penalty_tables.py"


rule probe_tables:
    input:
        probes=probe_files(),
    output:
        probes="results/tables/probes.csv",
        ratio="results/tables/probe_ratio.csv",
    params:
        grid_bits=config["probe"]["grid_bits"],
        alpha=config["analysis"]["alpha"],
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/probe_tables.log",
    script:
        "../workflow/scripts/probe_tables.py"
