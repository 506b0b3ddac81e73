"""qatgrid: the schedule x bit-width QAT study as a reproducible workflow."""
