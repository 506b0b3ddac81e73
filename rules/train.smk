# Training. With train.shared_trunk (the default), runs equal but for their warmdown branch off
# one shared trunk (qatgrid.trunks): `trunk` trains a group's stable phase up to each member's
# warmdown start, one segment per member, chained through the saved training states, and `train`
# starts the member from that state. A run alone in its group trains from step 0.


rule trunk:
    input:
        unpack(trunk_inputs),
    output:
        # The state at a branch step is needed only until its member and the next segment started
        # from it: Snakemake deletes it then (a 100M model's state is ~1 GB).
        state=temp(str(TRUNK_FILES.branch_state)),
        checksum=temp(str(TRUNK_FILES.branch_checksum)),
    params:
        run=lambda wildcards: RUNS[wildcards.run].as_dict(),
        step=lambda wildcards: BRANCHES[wildcards.run].step,
        train=TRAIN_PARAMS,
    threads: lambda wildcards: train_resources(wildcards, 1, "threads")
    group:
        pack_group
    resources:
        runtime=lambda wildcards, attempt: train_resources(wildcards, attempt, "runtime"),
        mem_mb=lambda wildcards, attempt: train_resources(wildcards, attempt, "mem_mb"),
    conda:
        "../envs/train.yaml"
    log:
        str(TRUNK_FILES.log),
    script:
        "../workflow/scripts/trunk.py"


rule train:
    input:
        unpack(train_inputs),
    output:
        **RUN_FILES.outputs(),
    params:
        run=lambda wildcards: RUNS[wildcards.run].as_dict(),
        train=TRAIN_PARAMS,
        logging=canonical(config.get("logging", {})),
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
