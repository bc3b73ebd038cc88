"""Validators for the schemas of the local API's OpenAPI file (3.1: JSON Schema 2020-12)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def schema(name: str, openapi: dict[str, Any]) -> Draft202012Validator:
    """A validator for one schema of the OpenAPI file."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(openapi, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry
    )
