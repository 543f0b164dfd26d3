"""Validation against Table Schemas. ``validate()`` is the contract; the engine behind it may change."""

from .engine import TypedResult, validate, validate_and_type
from .infer import infer_schema
from .report import Report
from .sqlengine import Reference

__all__ = ["Reference", "Report", "TypedResult", "infer_schema", "validate", "validate_and_type"]
