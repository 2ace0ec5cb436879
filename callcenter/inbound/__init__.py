"""Shell: inbound calls, the IVR interpreter (pure) and its FastAGI route (shell)."""
