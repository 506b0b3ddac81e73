rule train:
    input:
        data_outputs(),
        meta=f"{DATA_DIR}/meta.json",
    output:
        metrics="results/runs/{run}/metrics.json",
        ckpt_prewarmdown="results/runs/{run}/ckpt_prewarmdown.pt",
        ckpt_final="results/runs/{run}/ckpt_final.pt",
        probe="results/runs/{run}/probe.json",
    params:
        run=lambda wildcards: RUNS[wildcards.run].as_dict(),
        train=config["train"],
        logging=config.get("logging", {}),
        # Resumable state sits outside the declared outputs, which Snakemake deletes on failure.
        state_dir=lambda wildcards: f"results/state/{wildcards.run}",
    threads: lambda wildcards: train_resources(wildcards, 1, "threads")
    group:
        pack_group
    resources:
        runtime=lambda wildcards, attempt: train_resources(wildcards, attempt, "runtime"),
        mem_mb=lambda wildcards, attempt: train_resources(wildcards, attempt, "mem_mb"),
    conda:
        "../envs/train.yaml"
    log:
        "results/logs/train/{run}.log",
    script:
        "../workflow/scripts/train.py"
