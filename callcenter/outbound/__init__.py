"""Shell: outbound campaigns. Pacing, contacts and DNC (pure); the dialer service and its HTTP routes
(shell)."""
