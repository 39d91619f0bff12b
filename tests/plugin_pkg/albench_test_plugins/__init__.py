"""albench plug-ins of a package that is not albench: one module per plug-in, found through
the entry points of its pyproject.toml."""
