"""Exit codes of the `greenrt` command line, stable for scripts: 0 ok / outputs match, 1 outputs mismatch (or
conformance regressions), 2 could not run (bad file, unsupported op, bad input or arguments)."""

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2
