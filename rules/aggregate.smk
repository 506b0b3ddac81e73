rule runs_table:
    localrule: True
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
    localrule: True
    input:
        metrics=metrics_files(),
    output:
        by_warmdown=table_report("results/tables/loss_by_warmdown.csv"),
        optimal=table_report("results/tables/optimal_warmdown.csv"),
        paired=table_report("results/tables/paired_tests.csv"),
        regimes=table_report("results/tables/regimes.csv"),
        robustness=table_report("results/tables/robustness.csv"),
    params:
        alpha=config["analysis"]["alpha"],
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/warmdown_tables.log",
    script:
        "../workflow/scripts/warmdown_tables.py"


rule penalty_tables:
    localrule: True
    input:
        metrics=metrics_files(penalty_runs),
    output:
        penalty=table_report("results/tables/penalty.csv"),
        fit=table_report("results/tables/penalty_fit.csv"),
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
    localrule: True
    input:
        probes=probe_files(),
    output:
        probes="results/tables/probes.csv",
        ratio=table_report("results/tables/probe_ratio.csv"),
    params:
        grid_bits=config["probe"]["grid_bits"],
        alpha=config["analysis"]["alpha"],
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/probe_tables.log",
    script:
        "../workflow/scripts/probe_tables.py"


rule footprint:
    localrule: True
    input:
        runs="results/tables/runs.parquet",
    output:
        table_report("results/tables/footprint.csv"),
    params:
        # the planned grid's GPU-hour estimate needs most of the config; its key order is not a change
        config=canonical(config),
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/footprint.log",
    script:
        "../workflow/scripts/footprint.py"


rule boundary_map_table:
    localrule: True
    input:
        optimal="results/tables/optimal_warmdown.csv",
        regimes="results/tables/regimes.csv",
    output:
        table_report("results/tables/boundary_map.csv"),
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/boundary_map_table.log",
    script:
        "../workflow/scripts/boundary_map_table.py"


rule variance_components:
    input:
        metrics=metrics_files(),
    output:
        report("results/tables/variance_components.csv", caption="../workflow/report/variance_components.rst",
               category="Tables"),
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/variance_components.log",
    script:
        "../workflow/scripts/variance_components.py"
