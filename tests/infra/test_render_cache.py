"""Re-rendering a fleet skips the stacks whose inputs are those of the render on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sovstack.infra import render as render_mod
from sovstack.infra import render_cache

REPO = Path(__file__).resolve().parents[2]
GIT = render_mod.GitSource(repo_url="https://git.example.eu/platform/gitops.git", path="out")


@pytest.fixture
def fleet(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "stacks"
    folder.mkdir()
    for name in ("gov-fr", "airgap-onprem"):
        shutil.copy(REPO / "stacks" / f"Pulumi.{name}.yaml", folder)
    return sorted(folder.glob("Pulumi.*.yaml"))


def _no_workers(*args: object, **kwargs: object) -> None:
    raise AssertionError("a worker pool was started for a fleet with nothing to render")


def test_an_unchanged_fleet_starts_no_worker_and_keeps_its_files(
    fleet: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert render_mod.render_all(fleet, out, progress=False, git=GIT, demo=True) == 0
    first = capsys.readouterr().out
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    monkeypatch.setattr(render_mod, "ProcessPoolExecutor", _no_workers)
    assert render_mod.render_all(fleet, out, progress=False, git=GIT, demo=True) == 0
    second = capsys.readouterr().out
    assert "unchanged (same inputs" not in first
    # The same object count as the full render, read from the record beside each render.
    assert second.split(" to ")[0] == first.split(" to ")[0]
    assert second.rstrip().endswith("; 2 unchanged (same inputs as the render on disk)")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps


def test_a_changed_stack_file_is_rendered_again_and_only_it(
    fleet: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    render_mod.render_all(fleet, out, progress=False, git=GIT, demo=True)
    capsys.readouterr()
    fleet[1].write_text(fleet[1].read_text() + "# reviewed\n")
    render_mod.render_all(fleet, out, progress=True, git=GIT, demo=True)
    captured = capsys.readouterr()
    assert "; 1 unchanged" in captured.out
    assert "[1/1] gov-fr: ok" in captured.err


def test_new_code_or_another_git_source_renders_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    stack = REPO / "stacks" / "Pulumi.gov-fr.yaml"
    render_mod.render_stack(stack, out, GIT, demo=True)
    record = (out / render_cache.INPUTS_FILE).read_text()
    digest = record.splitlines()[0].split()[1]
    assert render_cache.unchanged(out, digest) is not None
    other_git = render_mod._digest(
        stack, render_mod.GitSource(repo_url=GIT.repo_url, revision="v2", path="out"), demo=True
    )
    assert render_cache.unchanged(out, other_git) is None
    monkeypatch.setattr(render_cache, "code_digest", lambda: "0" * 64)
    assert render_mod._digest(stack, GIT, demo=True) != digest


def test_force_and_a_damaged_record_render_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    stack = REPO / "stacks" / "Pulumi.gov-fr.yaml"
    render_mod.render_stack(stack, out, GIT, demo=True)
    calls: list[object] = []
    real = render_mod.render_files

    def counting(*args: object, **kwargs: object) -> dict[str, str]:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(render_mod, "render_files", counting)
    render_mod.render_stack(stack, out, GIT, demo=True)
    assert calls == []
    render_mod.render_stack(stack, out, GIT, force=True, demo=True)
    assert len(calls) == 1
    (out / render_cache.INPUTS_FILE).write_text("inputs 1234\nobjects many\n")
    render_mod.render_stack(stack, out, GIT, demo=True)
    assert len(calls) == 2


def test_the_code_digest_covers_code_data_and_linked_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sovstack

    outside = tmp_path / "repo" / "components"
    (outside / "data").mkdir(parents=True)
    (outside / "data" / "regions.yaml").write_text("regions: []\n")
    (outside / "build.py").write_text("X = 1\n")
    package = tmp_path / "repo" / "sovstack"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "components").symlink_to(outside)  # as the repository links its folders in
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.pyc").write_bytes(b"ignored")
    monkeypatch.setattr(sovstack, "__file__", str(package / "__init__.py"))

    def digest() -> str:
        render_cache.code_digest.cache_clear()
        return render_cache.code_digest()

    try:
        before = digest()
        (package / "__pycache__" / "x.pyc").write_bytes(b"still ignored")
        assert digest() == before
        (outside / "data" / "regions.yaml").write_text("regions: [fr-par]\n")
        after_data = digest()
        assert after_data != before
        (outside / "build.py").write_text("X = 2\n")
        assert digest() not in (before, after_data)
    finally:
        render_cache.code_digest.cache_clear()
