"""Shell: supervision. Listen, whisper and barge rules (pure); the monitor service and its HTTP
routes (shell)."""
