rule probe:
    input:
        ckpt="results/runs/{run}/ckpt_prewarmdown.pt",
    output:
        "results/probes/{run}.json",
    params:
        grid_bits=config["probe"]["grid_bits"],
    conda:
        "../envs/train.yaml"
    log:
        "results/logs/probe/{run}.log",
    script:
        "../workflow/scripts/probe.py"
