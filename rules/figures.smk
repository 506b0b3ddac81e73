# One rule per figure, so `snakemake results/figures/<name>.pdf` builds only what that figure needs.
# Each also writes its report caption (results/figures/<name>.rst): the template in
# workflow/report/ with this run's numbers filled in from the tables.


rule figure_loss_vs_warmdown:
    input:
        table="results/tables/loss_by_warmdown.csv",
        facts="results/tables/optimal_warmdown.csv",
        template="workflow/report/loss_vs_warmdown.rst",
    output:
        pdf=report("results/figures/loss_vs_warmdown.pdf", caption="../results/figures/loss_vs_warmdown.rst", category="Figures"),
        png="results/figures/loss_vs_warmdown.png",
        caption="results/figures/loss_vs_warmdown.rst",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/figures/loss_vs_warmdown.log",
    script:
        "../workflow/scripts/figure.py"


rule figure_optimal_warmdown:
    input:
        table="results/tables/optimal_warmdown.csv",
        template="workflow/report/optimal_warmdown.rst",
    output:
        pdf=report("results/figures/optimal_warmdown.pdf", caption="../results/figures/optimal_warmdown.rst", category="Figures"),
        png="results/figures/optimal_warmdown.png",
        caption="results/figures/optimal_warmdown.rst",
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
        template="workflow/report/penalty_law.rst",
    output:
        pdf=report("results/figures/penalty_law.pdf", caption="../results/figures/penalty_law.rst", category="Figures"),
        png="results/figures/penalty_law.png",
        caption="results/figures/penalty_law.rst",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/figures/penalty_law.log",
    script:
        "../workflow/scripts/figure.py"


rule figure_paired_z:
    input:
        table="results/tables/paired_tests.csv",
        template="workflow/report/paired_z.rst",
    output:
        pdf=report("results/figures/paired_z.pdf", caption="../results/figures/paired_z.rst", category="Figures"),
        png="results/figures/paired_z.png",
        caption="results/figures/paired_z.rst",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/figures/paired_z.log",
    script:
        "../workflow/scripts/figure.py"


rule figure_grid_distance:
    input:
        table="results/tables/probe_ratio.csv",
        template="workflow/report/grid_distance.rst",
    output:
        pdf=report("results/figures/grid_distance.pdf", caption="../results/figures/grid_distance.rst", category="Figures"),
        png="results/figures/grid_distance.png",
        caption="results/figures/grid_distance.rst",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/figures/grid_distance.log",
    script:
        "../workflow/scripts/figure.py"


rule figure_robustness:
    input:
        table="results/tables/loss_by_warmdown.csv",
        facts="results/tables/robustness.csv",
        template="workflow/report/robustness.rst",
    output:
        pdf=report("results/figures/robustness.pdf", caption="../results/figures/robustness.rst", category="Figures"),
        png="results/figures/robustness.png",
        caption="results/figures/robustness.rst",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/figures/robustness.log",
    script:
        "../workflow/scripts/figure.py"


rule figure_boundary_map:
    input:
        table="results/tables/boundary_map.csv",
        template="workflow/report/boundary_map.rst",
    output:
        pdf=report("results/figures/boundary_map.pdf", caption="../results/figures/boundary_map.rst", category="Figures"),
        png="results/figures/boundary_map.png",
        caption="results/figures/boundary_map.rst",
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/figures/boundary_map.log",
    script:
        "../workflow/scripts/figure.py"


# The README's gallery: `snakemake --cores 1 gallery` copies the default run's PNGs into docs/gallery/.
rule gallery:
    input:
        expand("results/figures/{name}.png", name=FIGURES),
    output:
        expand("docs/gallery/{name}.png", name=FIGURES),
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/gallery.log",
    script:
        "../workflow/scripts/gallery.py"
