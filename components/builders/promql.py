"""The metric names a PromQL expression reads, and a check that each is one an exporter exposes.

Enough of PromQL's lexical grammar to tell a metric name from a function, an aggregation, a keyword,
a label name (in matchers and in `by`/`on`/... lists), a string, a number or a duration. No Pulumi import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    | (?P<range>\[[^\[\]]*\])
    | (?P<number>0[xX][0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?(?:ms|[smhdwy])*)
    | (?P<identifier>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<operator>==|!=|=~|!~|>=|<=|[-+*/%^<>=(){},@])
    """,
    re.VERBOSE,
)

#: Words that take a parenthesised list of label names after them.
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
#: Words that are never metric names (PromQL keywords and the literals Inf and NaN).
_KEYWORDS = _LABEL_LIST_KEYWORDS | {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
#: Series a histogram is exposed as: `<name>_bucket`, `<name>_sum`, `<name>_count`.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"unexpected {expr[position]!r} at position {position} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group()))
        position = match.end()
    return tokens


def metric_names(expr: str) -> set[str]:
    """Every metric name `expr` selects. Raises ValueError on text that is not PromQL's token grammar
    or has unbalanced braces or parentheses."""
    tokens = _tokens(expr)
    names: set[str] = set()
    depth = 0  # parentheses
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if text == "{":
            # Label matchers: label names and values, never a metric name.
            close = next((i for i in range(index + 1, len(tokens)) if tokens[i][1] == "}"), None)
            if close is None:
                raise ValueError(f"unclosed '{{' in {expr!r}")
            index = close + 1
            continue
        if text == "}":
            raise ValueError(f"unbalanced '}}' in {expr!r}")
        if kind == "identifier" and text.lower() in _LABEL_LIST_KEYWORDS and following == "(":
            close = next((i for i in range(index + 2, len(tokens)) if tokens[i][1] == ")"), None)
            if close is None:
                raise ValueError(f"unclosed label list after {text!r} in {expr!r}")
            index = close + 1
            continue
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ')' in {expr!r}")
        elif (
            kind == "identifier"
            and text.lower() not in _KEYWORDS
            # A function or aggregation: `rate(`, `sum(`, `sum by (`, `topk without (`.
            and following != "("
            and following.lower() not in ("by", "without")
        ):
            names.add(text)
        index += 1
    if depth:
        raise ValueError(f"unclosed '(' in {expr!r}")
    return names


def is_exposed(series: str, metrics: Mapping[str, str]) -> bool:
    """True when `series` is a metric in `metrics` (name -> type), or a histogram's bucket, sum or count."""
    if metrics.get(series) not in (None, "histogram"):
        return True
    return any(
        series.endswith(suffix) and metrics.get(series.removesuffix(suffix)) == "histogram"
        for suffix in HISTOGRAM_SUFFIXES
    )


def unknown_metrics(expressions: Iterable[str], metrics: Mapping[str, str]) -> list[str]:
    """The metric names the expressions read that `metrics` (name -> type) does not list, sorted."""
    found: set[str] = set()
    for expr in expressions:
        found |= metric_names(expr)
    return sorted(name for name in found if not is_exposed(name, metrics))
