"""Shell: Asterisk. Every name, the sans-IO AMI and FastAGI codecs, typed events (pure); the AMI client,
the FastAGI server and the fallback AGI script (shells)."""
