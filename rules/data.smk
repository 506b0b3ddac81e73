# Each data configuration has its own folder, results/data/<key>/ (DATA_DIR, from
# qatgrid.data.data_key), so switching configs rebuilds nothing still valid.
# Threads, memory and runtime come from the config's resources.data.

if config["data"]["source"] == "parameter-golf":

    # Fetched once where Snakemake runs (compute nodes may have no network), hence a local rule;
    # training jobs read the shared folder only.
    rule download:
        localrule: True
        output:
            data_outputs(),
        params:
            data=config["data"],
        conda:
            "../envs/data.yaml"
        log:
            f"results/logs/data/{DATA_KEY}.log",
        script:
            "../workflow/scripts/download.py"

else:

    # One pass over the corpus: tokenizer on a bounded sample, then every document encoded.
    rule tokens:
        output:
            data_outputs(),
        params:
            data=config["data"],
        threads: data_resources()["threads"]
        resources:
            runtime=data_resources()["runtime_min"],
            mem_mb=data_resources()["mem_mb"],
        conda:
            "../envs/data.yaml"
        log:
            f"results/logs/data/{DATA_KEY}.log",
        script:
            "../workflow/scripts/tokens.py"
