"""The schema file, the home of every default, and the validator that writes its defaults.

``grid`` fills the defaults of a merged schedule or model from here, and ``schema``
validates whole configs; this module imports neither, so that they do not import each other
in a circle.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import jsonschema
import yaml

from cnnopt.common.errors import ConfigError
from cnnopt.common.registry import ARCHITECTURES, GRID_ROLES, OPTIMIZERS, SCHEMA_PATH


def _filling_defaults(validator_class):
    """Extend a jsonschema validator so that it writes each property's default into the data."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


#: Validates an instance and writes the schema's defaults into it, in place.
FillingValidator = _filling_defaults(jsonschema.Draft202012Validator)


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The schema, with the enums of names the registry keeps (optimizer types,
    architectures, roles) filled in from ``cnnopt.common.registry``."""
    with open(path, encoding="utf-8") as fh:
        schema = yaml.safe_load(fh)
    definitions = schema["definitions"]
    definitions["hyperparameters"]["properties"]["type"]["enum"] = list(OPTIMIZERS)
    definitions["model"]["properties"]["architecture"]["enum"] = list(ARCHITECTURES)
    schema["properties"]["variants"]["additionalProperties"]["properties"]["role"]["enum"] = list(GRID_ROLES)
    return schema


@functools.cache
def file_schema() -> dict:
    """The schema file's schema (:func:`load_schema`), read once; do not modify it."""
    return load_schema()


def fill_defaults(definition: str, instance: dict, schema: dict | None = None, where: str = "") -> dict:
    """``instance`` with the defaults of ``definitions/<definition>`` of ``schema`` (the
    schema file's when None) filled in, as a new dict; raises :class:`ConfigError` (one line,
    naming the config key ``where``) when it does not fit that definition."""
    schema = schema or file_schema()
    instance = copy.deepcopy(instance)
    validator = FillingValidator({"$ref": f"#/definitions/{definition}",
                                  "definitions": schema["definitions"]})
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        key = "/".join([where, *map(str, error.absolute_path)]).strip("/") or "(top level)"
        raise ConfigError(f"config key {key}: {error.message} (schema definitions/{definition})")
    return instance
