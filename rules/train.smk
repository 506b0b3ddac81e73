# Training. With train.shared_trunk (the default), runs equal but for their warmdown branch off
# one shared trunk (qatgrid.trunks). With train.trunk_jobs: segments (the default), `trunk` trains
# a group's stable phase up to each member's warmdown start, one segment per member, chained
# through the saved training states, and `train` starts the member from that state. A run alone
# in its group trains from step 0. With train.trunk_jobs: group, `train_group` trains a whole
# group (its segments and runs) in one job, and `run_outputs` moves each run's outputs in place.
# Each training rule runs its job of the plan (qatgrid.plan: an ordered list of tasks, passed as
# params.tasks) with the one training script, workflow/scripts/train_job.py (qatgrid.train.run_job).

if TRUNK_GROUP_JOBS:

    rule train_group:
        input:
            meta=f"{DATA_DIR}/meta.json",
        output:
            # What the runs' own jobs wait for; their outputs are staged beside it.
            done=temp(str(GROUP_FILES.done)),
        params:
            tasks=lambda wildcards: job_tasks("train_group", wildcards.trunk),
            train=train_params,
            logging=canonical(config.get("logging", {})),
        threads: train_threads
        group:
            pack_group
        resources:
            **TRAIN_RESOURCES,
        conda:
            "../envs/train.yaml"
        log:
            str(GROUP_FILES.log),
        script:
            "../workflow/scripts/train_job.py"

    rule run_outputs:
        input:
            group_done,
        output:
            **RUN_FILES.outputs(),
        params:
            # Where the group's job left the outputs.
            staged=lambda wildcards: GroupFiles(GROUP_OF[wildcards.run]).member(wildcards.run).outputs(),
            # The run's training parameters, as rule `train` has them: a change reruns the run.
            run=lambda wildcards: RUNS[wildcards.run].as_dict(),
            train=train_params,
            logging=canonical(config.get("logging", {})),
        localrule: True
        conda:
            "../envs/train.yaml"
        log:
            str(RUN_FILES.moved_log),
        # Renames on one file system, metrics last: atomic, and no interpreter to start. (The
        # weights the run keeps are no declared output: the group's job wrote them in place.)
        shell:
            "(mv {params.staged[probe]} {output.probe} && mv {params.staged[metrics]} {output.metrics}) 2> {log}"

else:

    rule trunk:
        input:
            unpack(trunk_inputs),
        output:
            # The state at a branch step is needed only until its member and the next segment started
            # from it: Snakemake deletes it then (a 100M model's state is ~1 GB).
            state=temp(str(TRUNK_FILES.branch_state)),
            checksum=temp(str(TRUNK_FILES.branch_checksum)),
        params:
            tasks=lambda wildcards: job_tasks("trunk", wildcards.run),
            train=train_params,
        threads: train_threads
        group:
            pack_group
        resources:
            **TRAIN_RESOURCES,
        conda:
            "../envs/train.yaml"
        log:
            str(TRUNK_FILES.log),
        script:
            "../workflow/scripts/train_job.py"


    rule train:
        input:
            unpack(train_inputs),
        output:
            **RUN_FILES.outputs(),
        params:
            tasks=lambda wildcards: job_tasks("train", wildcards.run),
            train=train_params,
            logging=canonical(config.get("logging", {})),
        threads: train_threads
        group:
            pack_group
        resources:
            **TRAIN_RESOURCES,
        conda:
            "../envs/train.yaml"
        log:
            str(RUN_FILES.log),
        script:
            "../workflow/scripts/train_job.py"
