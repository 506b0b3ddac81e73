rule train:
    input:
        # The data folder through its last-written file: meta.json appears only once every
        # shard, the tokenizer and the byte counts are in place (one input per job keeps the
        # DAG small; training validates the files it reads).
        meta=f"{DATA_DIR}/meta.json",
    output:
        **RUN_FILES.outputs(),
    params:
        run=lambda wildcards: RUNS[wildcards.run].as_dict(),
        train=config["train"],
        logging=config.get("logging", {}),
    threads: lambda wildcards: train_resources(wildcards, 1, "threads")
    group:
        pack_group
    resources:
        runtime=lambda wildcards, attempt: train_resources(wildcards, attempt, "runtime"),
        mem_mb=lambda wildcards, attempt: train_resources(wildcards, attempt, "mem_mb"),
    conda:
        "../envs/train.yaml"
    log:
        str(RUN_FILES.log),
    script:
        "../workflow/scripts/train.py"
