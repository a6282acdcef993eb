"""Claim-conditioned stance detection: does a statement support, doubt or ignore a claim?"""

__version__ = "0.1.0"
