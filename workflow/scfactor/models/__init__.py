"""Model implementations, one module (or more) per analysis."""
