"""Composition root: callcenter, an on-premises voice call center driven over Asterisk's AMI and FastAGI."""

__version__ = "0.1.0"
