"""The app's OpenAPI document is assembled from the features' paths, never changed in place,
and an operation described by two features is refused at start-up."""

from __future__ import annotations

import pytest

from controller.common.openapi import assemble, merge

BASE = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}}
LIST = {"/api/v1/lessons": {"get": {"summary": "list"}}}
CREATE = {"/api/v1/lessons": {"post": {"summary": "create"}}}


def test_two_features_may_serve_one_path_with_different_methods() -> None:
    doc = assemble(BASE, LIST, CREATE)
    assert doc["paths"]["/api/v1/lessons"] == {
        "get": {"summary": "list"},
        "post": {"summary": "create"},
    }
    # Nothing given was changed: neither the head nor a feature's fragment.
    assert "paths" not in BASE
    assert LIST == {"/api/v1/lessons": {"get": {"summary": "list"}}}
    doc["paths"]["/api/v1/lessons"]["get"]["summary"] = "changed"
    assert LIST["/api/v1/lessons"]["get"]["summary"] == "list"


def test_an_operation_described_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"GET /api/v1/lessons is described twice"):
        assemble(BASE, LIST, {"/api/v1/lessons": {"get": {"summary": "again"}}})
    with pytest.raises(ValueError, match=r"POST /api/v1/lessons is described twice"):
        merge(CREATE, CREATE)
