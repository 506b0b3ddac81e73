rule tokenizer:
    output:
        "results/data/tokenizer.json",
    params:
        data=config["data"],
    conda:
        "../envs/data.yaml"
    log:
        "results/logs/tokenizer.log",
    script:
        "../workflow/scripts/tokenizer.py"


rule tokens:
    input:
        tokenizer="results/data/tokenizer.json",
    output:
        train="results/data/train.bin",
        val="results/data/val.bin",
        meta="results/data/meta.json",
    params:
        data=config["data"],
    conda:
        "../envs/data.yaml"
    log:
        "results/logs/tokens.log",
    script:
        "../workflow/scripts/tokens.py"
