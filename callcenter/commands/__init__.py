"""Composition root: the CLI's subcommands, one module each, registered by ``callcenter.cli``."""
