"""The controller's OpenAPI document, assembled once per app from each feature's paths.

Nothing here is changed in place: every app gets a fresh document, so two apps in one
process (tests, a future second listener) cannot leak routes into each other, and an
operation (a path's method) described twice is refused at start-up rather than silently
overwritten. The document's head (``BASE``) holds no paths: every path is a feature's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from aiohttp import web

OPENAPI_KEY = web.AppKey("openapi", dict)


def merge(*fragments: Mapping[str, Any]) -> dict[str, Any]:
    """One feature's paths from its modules' fragments; a path in two of them is refused."""
    return assemble({"paths": {}}, *fragments)["paths"]  # type: ignore[no-any-return]


def assemble(base: Mapping[str, Any], *features: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh document: ``base`` (with its own paths) plus each feature's paths."""
    document = copy.deepcopy(dict(base))
    paths: dict[str, Any] = document.setdefault("paths", {})
    for feature in features:
        for path, item in feature.items():
            held = paths.setdefault(path, {})
            # Two features may serve one path with different methods (the lesson list is
            # the lessons feature's GET and the timetable's POST); a method twice is a bug.
            for method, operation in item.items():
                if method in held:
                    raise ValueError(
                        f"OpenAPI {method.upper()} {path} is described twice; keep one"
                    )
                held[method] = copy.deepcopy(operation)
    return document
