"""Sandbox runtimes: one small interface (``base.Runtime``) and its backends, chosen in ``registry``."""
