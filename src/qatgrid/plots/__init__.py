"""Figures, each a function of tables only, saved as PDF (TrueType fonts) and PNG in one style
(`style.py`). `registry.FIGURES` names every figure: the runs it draws, the tables it reads
(`tables.py`) and its module `<name>.py`, with `draw` and `caption` (this run's numbers for the
report). Importing the package loads neither matplotlib nor pandas: the workflow reads the
registry at parse time."""
