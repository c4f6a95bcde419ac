"""Command-line interface: one module per subcommand group; parsing and printing only."""
