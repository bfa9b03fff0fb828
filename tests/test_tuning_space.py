"""Search spaces and tuning requests: what users write is accepted, and mistakes get a message
that names the parameter and the fix."""

from __future__ import annotations

import optuna.distributions as od
import pytest

from functions.tune import SpaceError, TuningRequest, parse_phrase, parse_space


def test_space_types_become_optuna_distributions():
    params = parse_space(
        {
            "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
            "dropout": {"type": "float", "low": 0, "high": 0.5},
            "width": {"type": "int", "low": 16, "high": 64, "step": 16},
            "batch_size": [32, 64],
        }
    )
    dists = {p.name: p.distribution() for p in params}
    assert dists["lr"] == od.FloatDistribution(1e-4, 0.1, log=True)
    assert dists["dropout"] == od.FloatDistribution(0.0, 0.5)
    assert dists["width"] == od.IntDistribution(16, 64, step=16)
    assert dists["batch_size"] == od.CategoricalDistribution([32, 64])
    assert [p.name for p in params] == ["lr", "dropout", "width", "batch_size"]


def test_list_form_from_the_page_is_the_same_space():
    listed = parse_space([{"name": "lr", "type": "float", "low": 0.001, "high": 0.1, "log": True}])
    mapped = parse_space({"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}})
    assert listed == mapped


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"lr": {"type": "float", "low": 0.1, "high": 0.001}},
            "range is reversed (low 0.1 > high 0.001)",
        ),
        (
            {"lr": {"type": "floaty", "low": 0, "high": 1}},
            "unknown type 'floaty' (use one of: float, int, categorical)",
        ),
        ({"lr": {"low": 0, "high": 1}}, "unknown type missing"),
        ({}, "search space is empty"),
        (None, "search space is empty"),
        ([], "search space is empty"),
        ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "log scale needs low > 0"),
        ({"n": {"type": "int", "low": 1.5, "high": 4}}, "int needs whole numbers, low is 1.5"),
        ({"n": {"type": "int", "low": 3, "high": 3}}, "nothing to tune"),
        ({"lr": {"type": "float", "low": "abc", "high": 1}}, "low must be a number, got 'abc'"),
        ({"lr": {"type": "float", "high": 1}}, "low is missing"),
        ({"opt": {"type": "categorical", "choices": []}}, "non-empty list of choices"),
        ({"opt": {"type": "categorical", "choices": ["a", "a"]}}, "choices repeat a value"),
        ({"bad name": {"type": "float", "low": 0, "high": 1}}, "must be letters, digits and _"),
        ("lr", "must be a mapping of parameter name"),
    ],
)
def test_bad_spaces_say_what_is_wrong(space, message):
    with pytest.raises(SpaceError) as caught:
        parse_space(space)
    assert message in str(caught.value)


def test_duplicate_names_in_a_list_are_refused():
    with pytest.raises(SpaceError, match="'lr' appears twice"):
        parse_space([{"name": "lr", "type": "float", "low": 0.1, "high": 1}] * 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "learning rate from 1e-4 to 1e-1, batch size 32 or 64",
            [
                {"name": "lr", "type": "float", "low": 1e-4, "high": 0.1, "log": True},
                {"name": "batch_size", "type": "categorical", "choices": [32, 64]},
            ],
        ),
        (
            "lr between 0.001 and 0.1 linear; epochs 1 to 3; optimizer sgd or adam",
            [
                {"name": "lr", "type": "float", "low": 0.001, "high": 0.1},
                {"name": "epochs", "type": "int", "low": 1, "high": 3},
                {"name": "optimizer", "type": "categorical", "choices": ["sgd", "adam"]},
            ],
        ),
        (
            "Batch size one of 16, 32, 64 and momentum from 0.5 to 0.99.",
            [
                {"name": "batch_size", "type": "categorical", "choices": [16, 32, 64]},
                {"name": "momentum", "type": "float", "low": 0.5, "high": 0.99},
            ],
        ),
        (
            "lr from 1e-3 to 1e-1, optimizer sgd or adam",
            [
                {"name": "lr", "type": "float", "low": 1e-3, "high": 0.1, "log": True},
                {"name": "optimizer", "type": "categorical", "choices": ["sgd", "adam"]},
            ],
        ),
        (
            "batch size 32 or 64, 128 and lr 1e-4 to 1e-2",
            [
                {"name": "batch_size", "type": "categorical", "choices": [32, 64, 128]},
                {"name": "lr", "type": "float", "low": 1e-4, "high": 0.01, "log": True},
            ],
        ),
        (
            "optimizer sgd, adam; weight decay 1e-5 to 1e-3 log",
            [
                {"name": "optimizer", "type": "categorical", "choices": ["sgd", "adam"]},
                {"name": "weight_decay", "type": "float", "low": 1e-5, "high": 1e-3, "log": True},
            ],
        ),
    ],
)
def test_plain_requests_parse_deterministically(text, expected):
    assert parse_phrase(text) == expected
    assert parse_phrase(text) == parse_phrase(text)
    parse_space(parse_phrase(text))  # and the result is a valid space


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the request is empty"),
        ("make it better", "cannot read 'make it better'"),
        ("lr from 1 to 2, lr from 3 to 4", "'lr' is mentioned twice"),
    ],
)
def test_unreadable_plain_requests_explain_the_grammar(text, message):
    with pytest.raises(SpaceError, match=message):
        parse_phrase(text)


def test_reversed_range_in_plain_words_is_caught_by_validation():
    with pytest.raises(SpaceError, match="range is reversed"):
        TuningRequest.from_dict({"id": "t1", "request": "learning rate from 0.1 to 0.0001"})


def test_request_defaults_and_plain_request():
    req = TuningRequest.from_dict({"request": "lr from 1e-3 to 1e-1"}, default_id="run-1")
    assert req.id == "run-1"
    assert req.objective.name == "val_accuracy" and req.objective.direction == "maximize"
    assert (req.budget.max_trials, req.budget.parallel_trials) == (12, 3)
    assert (req.sampler, req.pruner, req.trainer) == ("tpe", "median", {"builtin": "digits"})
    again = TuningRequest.from_dict(req.to_dict())
    assert again == req  # stored form round-trips (a restarted service reads it back)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sampler": "bayes"}, "unknown sampler 'bayes' (use one of: tpe, random, grid)"),
        ({"pruner": "asha"}, "unknown pruner 'asha'"),
        (
            {"objective": {"name": "loss", "direction": "down"}},
            "unknown objective direction 'down'",
        ),
        ({"budget": {"max_trials": 0}}, "max_trials must be at least 1"),
        ({"budget": {"parallel": 2}}, "unknown budget field(s) parallel"),
        ({"budget": {"max_trials": "many"}}, "budget max_trials must be a number"),
        ({"id": "Bad Id!"}, "must be lower-case letters"),
        ({"fixed": {"lr": 0.1}}, "lr is both fixed and tuned"),
        ({"trainer": {"builtin": "imagenet"}}, "unknown built-in trainer 'imagenet'"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(change, message):
    raw = {"id": "t1", "space": {"lr": {"type": "float", "low": 0.001, "high": 0.1}}, **change}
    with pytest.raises(SpaceError) as caught:
        TuningRequest.from_dict(raw)
    assert message in str(caught.value)
