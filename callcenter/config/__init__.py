"""Pure: the call center's configuration (model), its YAML loader and its renderer."""
