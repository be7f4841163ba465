"""Step functions of the workflow's shared rules: resource checksums, report tables, the config reference."""

from __future__ import annotations

import json

from . import cli, io
from .errors import InputError
from .options import SCHEMAS


def verify_resources(argv=None) -> int:
    """Verify bundled reference files against a SHA256SUMS list; write a marker file on success."""
    from .resources import verify
    p = cli.parser(verify_resources)
    p.add_argument("--sums", required=True, help="SHA256SUMS file; paths relative to its folder")
    p.add_argument("--output", required=True, help="marker file listing the verified files")
    args = cli.start(p, argv)
    done = verify(args.sums)
    with io.atomic_output(args.output) as tmp:
        tmp.write_text("".join(f"OK {d}\n" for d in done))
    cli.LOG.info("verified %d files", len(done))
    return 0


def report_config(argv=None) -> int:
    """The run's configuration, flattened to key/value rows, for `snakemake --report`."""
    import pandas as pd

    from .report import flatten
    p = cli.parser(report_config)
    p.add_argument("--config-json", required=True, help="the run's config as JSON")
    p.add_argument("--output", required=True, help="key/value .tsv")
    args = cli.start(p, argv)
    try:
        cfg = json.loads(args.config_json)
    except json.JSONDecodeError as exc:
        raise InputError("--config-json", f"not valid JSON ({exc.msg})") from None
    io.write_table(pd.DataFrame(list(flatten(cfg)), columns=["key", "value"]), args.output)
    return 0


def report_table(argv=None) -> int:
    """Validate a committed benchmark table and copy it for `snakemake --report` (without its command line)."""
    p = cli.parser(report_table)
    p.add_argument("--input", required=True, help="benchmarks/results/<name>.tsv")
    p.add_argument("--output", required=True, help="copy for the report")
    args = cli.start(p, argv)
    # a first line "# <command>" (the command that wrote the table, as benchmarks record it) is not a row
    with open(io.require_file(args.input)) as f:
        skip = 1 if f.readline().startswith("#") else 0
    df = io.read_table(args.input, sep="\t", skiprows=skip)
    if df.empty:
        raise InputError(args.input, "benchmark table has no rows")
    io.write_table(df, args.output)
    return 0


def config_docs(argv=None) -> int:
    """Render the configuration schemas (workflow/schemas/*.schema.yaml) as Markdown (config/README.md)."""
    from .config_docs import render
    p = cli.parser(config_docs)
    p.add_argument("--schemas", default=str(SCHEMAS), help="folder of the schema files")
    p.add_argument("--output", required=True, help="Markdown file to write")
    args = cli.start(p, argv)
    with io.atomic_output(args.output) as tmp:
        tmp.write_text(render(args.schemas))
    return 0
