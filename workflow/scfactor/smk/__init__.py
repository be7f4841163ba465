"""Pure functions the rule files call (command-line options built from config and wildcards).

Kept out of the ``.smk`` files so that those hold rules only (``snakemake --lint``) and so that
the option building can be unit-tested.
"""
