"""The residency report: the same sections in Markdown, HTML and JSON, its provenance, the checks it
claims, and a page that stays readable at 1280 px in a real browser."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from sovstack.components.catalog import DATA_DIR
from sovstack.infra.gitinfo import git_head
from sovstack.infra.pipeline import load_stack
from sovstack.infra.report import (
    NESTED,
    ProvenanceError,
    build_report,
    catalog_digest,
    catalog_files,
    fact,
    generation_time,
    git_commit,
    render_report,
    section_title,
    time_basis,
)
from sovstack.infra.schema_check import check_manifests
from tests.infra.conftest import EXAMPLES

EPOCH = "1764547200"  # 2025-12-01T00:00:00Z


@pytest.fixture(autouse=True)
def fixed_provenance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    monkeypatch.setenv("SOVSTACK_GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567")


def report_of(stack: str) -> dict[str, Any]:
    loaded = load_stack(stack)
    return build_report(loaded, loaded.composition, list(loaded.findings or ()))


class _Sections(HTMLParser):
    """Section ids and the h2/h3 titles inside them, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.titles: list[str] = []
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.ids.append(dict(attrs)["id"] or "")
        if tag in ("h2", "h3"):
            self._heading = []

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "h3") and self._heading is not None:
            self.titles.append("".join(self._heading).strip())
            self._heading = None


def json_sections(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The ids and titles the JSON's keys call for: top-level keys but the header's, nested dicts' keys."""
    ids, titles = [], []
    for key in data:
        if key in ("stack", "customer"):
            continue
        ids.append(key)
        titles.append(section_title(key))
        if key in NESTED and isinstance(data[key], dict):
            for sub in data[key]:
                ids.append(f"{key}-{sub}")
                titles.append(section_title(f"{key}.{sub}"))
    return ids, titles


def md_headings(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^#{2,3} (.+)$", text, re.MULTILINE)]


@pytest.mark.parametrize("stack", EXAMPLES)
def test_the_three_formats_hold_the_same_sections(stack: str) -> None:
    data = report_of(stack)
    parsed = json.loads(render_report(data, "json"))
    html = _Sections()
    html.feed(render_report(data, "html"))
    ids, titles = json_sections(parsed)
    assert sorted(html.ids) == sorted(ids)
    assert sorted(html.titles) == sorted(titles)
    assert sorted(md_headings(render_report(data, "md"))) == sorted(titles)
    # The sections the old HTML report dropped, by name.
    for section in ("policy", "inventory-buckets", "inventory-chartRepositories", "inventory-egress",
                    "inventory-endpoints", "facts", "checksRun", "generated"):  # fmt: skip
        assert section in html.ids


def test_a_key_added_to_the_data_is_a_section_in_every_format() -> None:
    data = report_of("gov-fr")
    data["placeholders"] = [{"field": "cluster.kubeconfig", "value": "REPLACE_ME", "why": "operator a | b"}]
    data["locationFree"] = [{"resource": "DNS zone", "reason": "global by design"}]
    data["someNewThing"] = {"issuer": "https://id.example.eu/realms/x"}
    md = render_report(data, "md")
    assert "## Placeholders\n\n| field | value | why |\n| --- | --- | --- |\n" in md
    assert "| cluster.kubeconfig | REPLACE_ME | operator a \\| b |" in md
    assert "## Location-free resources\n" in md
    assert (
        "## Some new thing\n\n| field | value |\n| --- | --- |\n| issuer | <https://id.example.eu/realms/x> |"
        in md
    )
    html = render_report(data, "html")
    assert '<section id="placeholders">\n<h2>Placeholders</h2>' in html
    assert '<section id="locationFree">\n<h2>Location-free resources</h2>' in html
    assert '<a href="https://id.example.eu/realms/x">https://id.example.eu/realms/x</a>' in html


def test_provenance_is_in_every_format() -> None:
    data = report_of("gov-fr")
    generated = data["generated"]
    stack_file = Path(__file__).resolve().parents[2] / "stacks" / "Pulumi.gov-fr.yaml"
    assert generated["at"] == "2025-12-01T00:00:00Z"
    assert generated["gitCommit"] == "0123456789abcdef0123456789abcdef01234567"
    assert generated["stackFile"] == "Pulumi.gov-fr.yaml"
    assert generated["stackSha256"] == hashlib.sha256(stack_file.read_bytes()).hexdigest()
    assert generated["sovstackVersion"] == "0.1.0"
    header = (
        "generated 2025-12-01T00:00:00Z by sovstack 0.1.0 at commit 0123456789abcdef0123456789abcdef01234567"
    )
    assert header in render_report(data, "md")
    assert json.loads(render_report(data, "json"))["generated"] == generated
    html = render_report(data, "html")
    assert generated["stackSha256"] in html and generated["catalogSha256"] in html


def test_the_catalog_digest_is_what_sha256sum_gives(tmp_path: Path) -> None:
    """The recipe docs/residency.md gives the auditor computes the report's catalogSha256."""
    done = subprocess.run(
        "LC_ALL=C sha256sum * | sha256sum",
        shell=True,
        cwd=DATA_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split()[0] == catalog_digest(catalog_files())
    assert report_of("gov-fr")["generated"]["catalogSha256"] == done.stdout.split()[0]


def test_generation_time_comes_from_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert generation_time() == "1970-01-01T00:00:00Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ProvenanceError) as err:
        generation_time()
    assert (
        str(err.value) == "SOURCE_DATE_EPOCH: 'yesterday' is not a whole number of seconds since 1970-01-01"
    )
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", generation_time())


def test_git_commit_is_head_of_the_stack_files_repository_or_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOVSTACK_GIT_COMMIT")
    outside = tmp_path / "Pulumi.x.yaml"
    outside.write_text("config: {}\n")
    assert git_commit(outside) == "unknown"
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}  # fmt: skip
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-qm", "x"], check=True, env=env)
    git_head.cache_clear()
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()
    assert git_commit(outside) == head
    # Without SOURCE_DATE_EPOCH the report's time is the commit's: the same commit, the same bytes.
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    when = subprocess.run(
        ["git", "-C", str(tmp_path), "log", "-1", "--format=%cI"], capture_output=True, text=True, check=True
    ).stdout.strip()
    stamp = datetime.fromisoformat(when).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert generation_time(outside) == stamp
    assert time_basis(outside) == "commit time of HEAD"
    assert time_basis(tmp_path.parent / "elsewhere" / "Pulumi.y.yaml") == "clock"


def test_the_schema_check_is_claimed_only_when_it_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    ran = report_of("gov-fr")
    assert ran["schemaChecks"]["ran"] is True
    assert ran["schemaChecks"]["failures"] == []
    assert ran["schemaChecks"]["checked"] > 10
    assert ran["checksRun"][1]["ran"] is True
    assert ran["checksRun"][1]["result"].startswith(
        f"{ran['schemaChecks']['checked']} of {ran['schemaChecks']['checked']} objects valid against Kubernetes "
    )
    monkeypatch.setitem(sys.modules, "kubernetes_validate", None)  # as if not installed
    missing = report_of("gov-fr")
    assert missing["schemaChecks"]["ran"] is False
    assert missing["checksRun"][1] == {
        "check": "Kubernetes schemas, strict mode (kubernetes-validate)",
        "ran": False,
        "result": "kubernetes-validate is not installed (pip install 'sovstack[schemas]'): not run",
    }
    md = render_report(missing, "md")
    assert (
        "| Kubernetes schemas, strict mode (kubernetes-validate) | no | kubernetes-validate is not installed"
        in md
    )


def test_every_fact_carries_its_source_link_retrieval_and_verification() -> None:
    report = report_of("gov-fr")
    facts = report["facts"]
    assert facts, "the report relies on catalog facts"
    for item in facts:
        assert set(item) == {"fact", "value", "source", "link", "noLinkBecause", "retrieved", "verified"}
        assert item["source"], item
        if item["link"] is None:
            assert item["noLinkBecause"] and item["retrieved"] is None and item["verified"] is False, item
        else:
            assert item["link"].startswith("https://") and item["noLinkBecause"] is None, item
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", item["retrieved"]), item
        assert isinstance(item["verified"], bool)
    by_fact = {f["fact"]: f for f in facts}
    # The stack's GPU was checked against Scaleway's GPU instance page at a pinned commit.
    assert by_fact["L40S has 48 GB GDDR6"]["verified"] is True
    assert by_fact["L40S has 48 GB GDDR6"]["link"] == (
        "https://github.com/scaleway/docs-content/blob/06dae9d52d4d0ae51a392c2aa192eacd4ddfbd5a/"
        "pages/gpu/reference-content/choosing-gpu-instance-type.mdx"
    )
    assert by_fact["GRA11 is in Gravelines, FR (EU)"]["verified"] is False
    assert by_fact["residency policy fr-sovereign"]["noLinkBecause"] == (
        "no public link to ANSSI's SecNumCloud 3.2 text is recorded; find the ANSSI page and add it"
    )
    assert "Apache-2.0 allows production, evaluation, research" in by_fact
    assert [f["fact"] for f in facts].count("Apache-2.0 allows production, evaluation, research") == 1
    verified = sum(f["verified"] for f in facts)
    assert report["factsSummary"] == {
        "facts": len(facts),
        "verified": verified,
        "unverified": len(facts) - verified,
        "withoutLink": sum(1 for f in facts if f["link"] is None),
        "oldestRetrieved": min(f["retrieved"] for f in facts if f["retrieved"]),
    }


def test_a_verified_fact_shows_as_a_link_and_the_summary_in_markdown_and_html() -> None:
    report = report_of("gov-fr")
    md, html = render_report(report, "md"), render_report(report, "html")
    link = next(f["link"] for f in report["facts"] if f["verified"])
    assert f"<{link}>" in md
    assert f'<a href="{link}">{link}</a>' in html
    summary = report["factsSummary"]
    assert f"| verified | {summary['verified']} |" in md
    assert f"| unverified | {summary['unverified']} |" in md
    assert "Facts verified against their sources" in md and "Facts verified against their sources" in html
    assert json.loads(render_report(report, "json"))["factsSummary"] == summary


def test_a_fact_calling_itself_unverified_is_never_reported_verified() -> None:
    from sovstack.components.provenance import Sourced

    checked = Sourced(url="https://example.org/page", retrieved="2026-01-01", verified=True)
    assert fact("x", "x", "docs page", checked)["verified"] is True
    assert fact("x", "x", "docs page (city unverified)", checked)["verified"] is False
    assert fact("x", "x", "prose only")["noLinkBecause"] == "no public source recorded"


# ---------------------------------------------------------------------------------- in a browser
def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


MEASURE = """<script>
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
    sections: Array.from(document.querySelectorAll("section")).map(s => s.id),
    headings: Array.from(document.querySelectorAll("section > h2, section > h3")).map(h => h.textContent.trim()),
  });
  document.body.appendChild(out);
});
</script>
"""


@pytest.mark.slow
@pytest.mark.parametrize("stack", ["gov-fr", "industrial-eu"])
def test_the_html_report_fits_1280_pixels_in_chromium(stack: str, tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: CI must run the browser test (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    data = report_of(stack)
    page = tmp_path / "report.html"
    page.write_text(render_report(data, "html").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1280,900",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, re.DOTALL)
    assert match, f"chromium exit {done.returncode}: {done.stderr[-2000:]}"
    measured = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert measured["clientWidth"] == 1280
    assert measured["scrollWidth"] <= 1280, measured
    assert sorted(measured["headings"]) == sorted(md_headings(render_report(data, "md")))
    assert sorted(measured["sections"]) == sorted(json_sections(data)[0])


# ---------------------------------------------------------------------------------- the schema check
def test_the_schema_check_reports_failures_and_kinds_it_cannot_check() -> None:
    result = check_manifests(
        [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "bogus": 1}, "data": {}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y"}, "data": {"a": "b"}},
            {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}},
        ],
        "1.31",
    )
    assert result["ran"] is True
    assert result["checked"] == 2
    assert result["failures"] == [
        "ConfigMap/x: Additional properties are not allowed ('bogus' was unexpected) at metadata"
    ]
    assert result["uncheckedKinds"] == ["Widget"]
    unsupported = check_manifests([], "9.99")
    assert unsupported["ran"] is False
    assert unsupported["reason"] == "kubernetes-validate has no schemas for Kubernetes 9.99: not run"


def test_render_refuses_manifests_that_fail_their_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sovstack.infra.report as report_module
    from sovstack.infra.render import GitSource, RenderError, render_stack

    def failing(objects: Any, version: str) -> dict[str, Any]:
        return {**check_manifests(objects, version), "failures": ["Deployment/x: bad at spec"]}

    monkeypatch.setattr(report_module, "check_manifests", failing)
    with pytest.raises(RenderError) as err:
        render_stack(
            "gov-fr",
            tmp_path / "out",
            GitSource(repo_url="https://git.example.eu/g.git", path="out"),
            demo=True,
        )
    loaded = load_stack("gov-fr")
    path, minor = loaded.path, loaded.spec.cluster.kubernetes_minor
    assert err.value.exit_code == 3
    assert err.value.lines == [
        f"{path}: schema (Kubernetes {minor}): Deployment/x: bad at spec",
        f"{path}: manifests fail their schema; nothing rendered",
    ]
    assert not (tmp_path / "out").exists()


def test_the_report_says_what_is_recorded_of_each_request_and_where() -> None:
    recorded = report_of("gov-fr")["inventory"]["inferenceRecords"]
    assert recorded == {
        "status": "recorded",
        "capture": "digest",
        "schema": "https://sovstack.eu/schemas/inference-record/v1.json",
        "location": "gov-fr-audit/records/v1/",
        "gatewayNamespaces": ["gateway"],
        "recordedModels": ["mistral-7b", "mistral-nemo"],
        "unrecordedModels": [],
    }
    # A stack whose models have no route runs no sovstack Gateway: the report says no request is recorded.
    unrouted = report_of("industrial-eu")["inventory"]["inferenceRecords"]
    assert unrouted["status"].startswith("none: no model has a route")
    assert (unrouted["capture"], unrouted["location"], unrouted["recordedModels"]) == (None, None, [])
    assert unrouted["unrecordedModels"]
