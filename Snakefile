# scfactor: single-cell factor models, end to end.  See README.md and DESIGN.md.
from snakemake.utils import min_version

min_version("9.14.1")


# No `configfile:` here: the config a run is given is the whole config (a user's own config never runs
# the bundled demo). `make run` / the profiles pass config/config.yaml; `--configfile my.yaml` replaces it.
if not config:
    raise ValueError(
        "no config given: run `snakemake --configfile config/config.yaml` (the bundled demo, also what "
        "`make run` does) or `snakemake --configfile my.yaml` for your own data (docs/own-data.md)"
    )


include: "workflow/rules/common.smk"


# every name that becomes part of a path (core.config.NAME: letters, digits, '.', '_', '-')
wildcard_constraints:
    dataset=NAME,
    run=NAME,
    sim=NAME,
    batch=NAME,


include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/grn.smk"
include: "workflow/rules/simulate_blocks.smk"
include: "workflow/rules/layers.smk"
include: "workflow/rules/densify.smk"
include: "workflow/rules/nbmix.smk"
include: "workflow/rules/integrate.smk"
include: "workflow/rules/simulate_mtl.smk"
include: "workflow/rules/mtl.smk"


rule all:
    input:
        TARGETS,
    default_target: True
