"""kdtune's version: the one string (pyproject.toml reads it; nodes compare it in preflight).

A module of its own so that anything may import it without importing the package's API.
"""

__version__ = "0.3.0"
