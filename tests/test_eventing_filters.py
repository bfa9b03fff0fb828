"""Trigger filter semantics (Knative's legacy `filter.attributes` and the `filters` dialects)."""

from __future__ import annotations

import pytest

from eventing.filters import (
    UnsupportedFilter,
    attributes_of,
    compile_filter,
    compile_trigger,
    possible_types,
)

UPLOAD = attributes_of(
    {
        "specversion": "1.0",
        "id": "1",
        "source": "/knflow/storage/uploads",
        "type": "dev.knflow.object.created",
        "subject": "talks/my talk.wav",
        "bucket": "uploads",
        "knativebrokerttl": 255,
        "data": {"type": "dev.knflow.transcript.created", "bucket": "other"},
    }
)


def test_attributes_are_strings_and_never_include_data():
    assert UPLOAD["knativebrokerttl"] == "255"
    assert "data" not in UPLOAD


@pytest.mark.parametrize(
    ("attributes", "matches"),
    [
        ({}, True),
        ({"type": "dev.knflow.object.created"}, True),
        ({"type": "dev.knflow.object.created", "bucket": "uploads"}, True),
        ({"type": "dev.knflow.object.created", "bucket": "models"}, False),
        ({"type": "dev.knflow.object"}, False),  # exact, not prefix
        ({"bucket": ""}, True),  # empty value: present with any value
        ({"missing": ""}, False),  # ...but it must be present
        ({"type": "dev.knflow.transcript.created"}, False),  # data is never looked at
    ],
)
def test_legacy_attribute_filter(attributes, matches):
    assert compile_trigger(attributes, None)(UPLOAD) is matches


@pytest.mark.parametrize(
    ("expr", "matches"),
    [
        ({"exact": {"type": "dev.knflow.object.created"}}, True),
        ({"exact": {"type": "dev.knflow.object.created", "bucket": "models"}}, False),
        ({"exact": {"nothere": "x"}}, False),
        ({"prefix": {"type": "dev.knflow.object."}}, True),
        ({"prefix": {"type": "dev.knflow.model."}}, False),
        ({"suffix": {"subject": ".wav"}}, True),
        ({"suffix": {"subject": ".mp3"}}, False),
        ({"suffix": {"nothere": ""}}, False),  # absent attribute never matches
        ({"all": [{"prefix": {"type": "dev."}}, {"suffix": {"subject": ".wav"}}]}, True),
        ({"all": [{"prefix": {"type": "dev."}}, {"suffix": {"subject": ".mp3"}}]}, False),
        ({"any": [{"suffix": {"subject": ".mp3"}}, {"suffix": {"subject": ".wav"}}]}, True),
        ({"any": [{"suffix": {"subject": ".mp3"}}, {"exact": {"bucket": "x"}}]}, False),
        ({"not": {"exact": {"bucket": "uploads"}}}, False),
        ({"not": {"exact": {"bucket": "models"}}}, True),
        ({"not": {"any": [{"exact": {"bucket": "a"}}, {"exact": {"bucket": "b"}}]}}, True),
        ({"exact": {"knativebrokerttl": "255"}}, True),
    ],
)
def test_filters_dialects(expr, matches):
    assert compile_filter(expr)(UPLOAD) is matches


def test_filters_list_is_a_conjunction_and_overrides_legacy():
    seed = [
        {"exact": {"type": "dev.knflow.object.created", "bucket": "uploads"}},
        {"any": [{"suffix": {"subject": ".wav"}}, {"suffix": {"subject": ".flac"}}]},
    ]
    assert compile_trigger({}, seed)(UPLOAD)
    assert not compile_trigger({}, [*seed, {"exact": {"bucket": "models"}}])(UPLOAD)
    # When `filters` is set, `filter.attributes` is ignored (as in Knative).
    assert compile_trigger({"type": "something.else"}, seed)(UPLOAD)


def test_cesql_and_malformed_filters_are_reported_not_silently_matched():
    with pytest.raises(UnsupportedFilter, match="CESQL"):
        compile_filter({"cesql": "type = 'x'"})
    with pytest.raises(UnsupportedFilter, match="exactly one dialect"):
        compile_filter({"exact": {"type": "a"}, "prefix": {"type": "b"}})


def test_possible_types_only_when_the_filter_pins_the_type():
    assert possible_types({"type": "a"}, None) == {"a"}
    assert possible_types({"type": ""}, None) is None  # any type
    assert possible_types({}, [{"exact": {"type": "a", "bucket": "x"}}]) == {"a"}
    assert possible_types({}, [{"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]}]) == {
        "a",
        "b",
    }
    assert (
        possible_types({}, [{"any": [{"exact": {"type": "a"}}, {"prefix": {"type": "b"}}]}]) is None
    )
    assert possible_types({}, [{"prefix": {"type": "a"}}]) is None
    assert possible_types({}, [{"not": {"exact": {"type": "a"}}}]) is None
    assert possible_types(
        {}, [{"all": [{"exact": {"type": "a"}}, {"suffix": {"subject": "x"}}]}]
    ) == {"a"}
