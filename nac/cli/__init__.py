"""The `nac` command line: one module of shared options, one per group of commands."""
