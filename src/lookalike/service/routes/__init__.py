"""The API's routes, one module per area; each route only parses, delegates and converts."""

from . import catalogue, checks, evidence, health, review

__all__ = ["catalogue", "checks", "evidence", "health", "review"]
