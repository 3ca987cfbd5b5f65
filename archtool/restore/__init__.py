"""Restorers, their registry, and planning a chain from a Profile."""
from archtool.restore.base import Restorer, Step
from archtool.restore.registry import get_restorer, list_restorers, register_restorer

__all__ = ["Restorer", "Step", "get_restorer", "list_restorers", "register_restorer"]
