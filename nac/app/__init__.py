"""The library the CLI and the web page call: one method per thing an operator does."""
