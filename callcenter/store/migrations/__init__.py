"""Shell: the schema's SQL migrations (``NNNN_name.sql``), applied in order by
``callcenter.store.migrate``."""
