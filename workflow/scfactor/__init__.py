"""scfactor: single-cell factor models behind a Snakemake workflow.

Subpackages hold the science; `workflow/scripts/*.py` are thin command-line wrappers.
"""

__version__ = "0.1.0"
