"""Asterisk: every name the product uses, the sans-IO AMI and FastAGI codecs and typed event views
(pure); the AMI client, the FastAGI server and the static fallback AGI (shell)."""
