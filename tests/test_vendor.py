"""The vendored widget manager gets Ajv's allowUnionTypes, so that widget pages log no strict-mode warnings."""
from __future__ import annotations

import pytest

from sequnet.publish import vendor


def test_every_ajv_set_up_of_the_widget_schema_gets_allow_union_types(tmp_path):
    path = tmp_path / "embed-amd.js"
    path.write_text("var a=1;gt=new(ht());gt.compile(At),gt.compile(pt);x=new(y());"
                    "k=new(w()),E=k.compile(y),$=k.compile(v);")
    vendor.allow_union_types(path)
    assert path.read_text() == ("var a=1;gt=new(ht())({allowUnionTypes:!0});gt.compile(At),gt.compile(pt);"
                                "x=new(y());k=new(w())({allowUnionTypes:!0}),E=k.compile(y),$=k.compile(v);")


def test_a_manager_without_the_set_up_stops_the_build(tmp_path):
    path = tmp_path / "embed-amd.js"
    path.write_text("x=new(y());")
    with pytest.raises(SystemExit, match="AJV_NEW"):
        vendor.allow_union_types(path)
