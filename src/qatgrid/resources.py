"""Cluster resources of a training job (time limit, memory, CPU threads), from config["resources"]."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runs import Run


def job_resources(config: dict, run: Run, attempt: int = 1) -> dict:
    """Cluster resources of one training job, from config["resources"]: its size's entry (else
    the default) gives the time limit in minutes, doubled on each retry so a run killed at its
    limit gets room to finish from its checkpoint, the memory and the CPU threads."""
    res = config["resources"]["sizes"].get(run.size, config["resources"]["default"])
    return {
        "runtime": res["runtime_min"] * 2 ** (attempt - 1),
        "mem_mb": res["mem_mb"],
        "threads": res.get("threads", config["train"]["threads"]),
    }
