"""Shell: the call center's configuration: its model (pure), its YAML loader and its renderer (shells)."""
