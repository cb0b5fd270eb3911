"""The ``brainmri`` command: one entry point, one module per subcommand."""
