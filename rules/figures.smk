# One rule draws every figure of the registry (qatgrid.plots.registry.FIGURES). A figure reads only
# the runs it draws (figure_inputs in common.smk) and builds its tables from them with the same
# qatgrid.stats calls as the aggregate rules, so `snakemake results/figures/<name>.pdf` trains only
# those runs. It also writes its report caption (results/figures/<name>.rst): the template
# workflow/report/<name>.rst with this run's numbers filled in; the report shows it through
# workflow/report/figure.rst, since a report caption's path cannot hold a wildcard.


rule figure:
    localrule: True
    input:
        unpack(figure_inputs),
    output:
        pdf=report("results/figures/{name}.pdf", caption="../workflow/report/figure.rst", category="Figures"),
        png="results/figures/{name}.png",
        caption="results/figures/{name}.rst",
    wildcard_constraints:
        name="|".join(FIGURES),
    params:
        settings=figure_settings(config),
        caption=lambda wildcards: FileText(f"results/figures/{wildcards.name}.rst"),
    conda:
        "../envs/analysis.yaml"
    log:
        "results/logs/figures/{name}.log",
    script:
        "../workflow/scripts/figure.py"


# The README's gallery: `snakemake --cores 1 gallery` copies the default run's PNGs into docs/gallery/.
rule gallery:
    localrule: True
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
