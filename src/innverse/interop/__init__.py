"""Adapters to the libraries this field already uses (Pyro, sbi, ArviZ): the only place that imports them."""

from .pyro import score_parts

__all__ = ["score_parts"]
