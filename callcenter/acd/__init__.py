"""Shell: the ACD. Agent table, router, the queued call's table (pure); the service, feature codes,
recorder, HTTP routes (shell)."""
