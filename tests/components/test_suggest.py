"""`did_you_mean` and `find_id`: the closest known id, ignoring case; nothing when nothing is close."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sovstack.components.suggest import closest, did_you_mean, find_id

PROVIDERS = ["existing", "operator", "ovh", "scaleway", "talos"]


def test_a_typo_gets_the_closest_choice() -> None:
    assert did_you_mean("scalway", PROVIDERS) == "; did you mean 'scaleway'?"
    assert did_you_mean("TALOS", PROVIDERS) == "; did you mean 'talos'?"


def test_a_unique_prefix_beats_a_similar_spelling() -> None:
    models = ["magistral-small-2506", "mistral-small-3-1-24b-instruct-2503", "mistral-7b-instruct-v0-3"]
    assert closest("mistral-small", models) == ["mistral-small-3-1-24b-instruct-2503"]
    assert closest("mistral", models) == []  # two share the prefix, and neither is spelled like it


def test_nothing_close_gives_no_suggestion() -> None:
    assert did_you_mean("aws", PROVIDERS) == ""
    assert did_you_mean("de-fra-dc1", ["fr-par-dc1", "se-sto-dc1"]) == ""
    assert did_you_mean("x", []) == ""


def test_find_id_ignores_case_but_prefers_the_exact_spelling() -> None:
    assert find_id("h100", ["H100", "H100-SXM"]) == "H100"
    assert find_id("GRA11", ["GRA11", "gra11"]) == "GRA11"
    assert find_id("gra11", ["GRA11", "Gra11"]) is None  # ambiguous without the exact spelling
    assert find_id("H10", ["H100"]) is None


@given(st.text(max_size=30), st.lists(st.text(max_size=20), max_size=8))
def test_any_input_gives_a_string_or_none(word: str, choices: list[str]) -> None:
    hint = did_you_mean(word, choices)
    assert hint == "" or (hint.startswith("; did you mean ") and hint.endswith("?"))
    found = find_id(word, choices)
    assert found is None or found in choices
