# One rule per figure, so `snakemake results/figures/<name>.pdf` builds only what that figure needs.


rule figure_loss_vs_warmdown:
    input:
        table="results/tables/loss_by_warmdown.csv",
    output:
        pdf=report("results/figures/loss_vs_warmdown.pdf", caption="../workflow/report/loss_vs_warmdown.rst", category="Figures"),
        png="results/figures/loss_vs_warmdown.png",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/figures/loss_vs_warmdown.log",
    script:
        "../workflow/scripts/figure.py"


rule figure_optimal_warmdown:
    input:
        table="results/tables/optimal_warmdown.csv",
    output:
        pdf=report("results/figures/optimal_warmdown.pdf", caption="../workflow/report/optimal_warmdown.rst", category="Figures"),
        png="results/figures/optimal_warmdown.png",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/figures/optimal_warmdown.log",
    script:
        "../workflow/scripts/figure.py"


rule figure_penalty_law:
    input:
        table="results/tables/penalty.csv",
        fit="results/tables/penalty_fit.csv",
    output:
        pdf=report("results/figures/penalty_law.pdf", caption="../workflow/report/penalty_law.rst", category="Figures"),
        png="results/figures/penalty_law.png",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/figures/penalty_law.log",
    script:
        "../workflow/scripts/figure.py"


rule figure_paired_z:
    input:
        table="results/tables/paired_tests.csv",
    output:
        pdf=report("results/figures/paired_z.pdf", caption="../workflow/report/paired_z.rst", category="Figures"),
        png="results/figures/paired_z.png",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/figures/paired_z.log",
    script:
        "../workflow/scripts/figure.py"


rule figure_grid_distance:
    input:
        table="results/tables/probe_ratio.csv",
    output:
        pdf=report("results/figures/grid_distance.pdf", caption="../workflow/report/grid_distance.rst", category="Figures"),
        png="results/figures/grid_distance.png",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/figures/grid_distance.log",
    script:
        "../workflow/scripts/figure.py"


rule figure_robustness:
    input:
        table="results/tables/loss_by_warmdown.csv",
    output:
        pdf=report("results/figures/robustness.pdf", caption="../workflow/report/robustness.rst", category="Figures"),
        png="results/figures/robustness.png",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/figures/robustness.log",
    script:
        "../workflow/scripts/figure.py"
