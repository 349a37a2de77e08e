"""Every relative link in README.md and docs/*.md leads to a file that exists and, when it names an
anchor, to a heading or an ``<a id>`` of that file, as GitHub renders them."""

from __future__ import annotations

import re
from pathlib import Path

from streams.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_EXPLICIT = re.compile(r"""<a\s+(?:id|name)=["']([^"']+)["']""")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_INLINE_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_NOT_IN_SLUG = re.compile(r"[^\w\- ]")


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without markup, lower case, punctuation other than
    hyphens and underscores dropped, each space a hyphen."""
    text = _INLINE_LINK.sub(r"\1", heading).replace("`", "").replace("*", "")
    return _NOT_IN_SLUG.sub("", text.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    text = _FENCE.sub("", markdown)
    found: set[str] = set(_EXPLICIT.findall(text))
    seen: dict[str, int] = {}
    for heading in _HEADING.findall(text):
        slug = github_slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")  # GitHub numbers repeated headings
    return found


def broken_links(page: Path) -> list[str]:
    text = _FENCE.sub("", page.read_text())
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
            broken.append(f"{page.name}: {target} (no such anchor)")
    return broken


def test_headings_become_github_anchors() -> None:
    assert github_slug("Per-model concurrency (`max_concurrent`)") == "per-model-concurrency-max_concurrent"
    assert github_slug("`make chaos`") == "make-chaos"
    assert github_slug("What producers may set") == "what-producers-may-set"
    assert github_slug("Cost, metrics and alerts") == "cost-metrics-and-alerts"
    assert anchors('# A\n\n```\n# not a heading\n```\n\n## A\n\n- <a id="x-y"></a>**X.**\n') == {"a", "a-1", "x-y"}


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Real heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#real-heading) [ok](#here) [web](https://example.com/x#y)\n\n## Here\n\n"
        "[gone](missing.md) [no anchor](other.md#nowhere)\n\n```\n[in code](nowhere.md)\n```\n"
    )
    assert broken_links(page) == ["page.md: missing.md (no such file)", "page.md: other.md#nowhere (no such anchor)"]


def test_the_docs_are_there() -> None:
    assert len(pages()) > 10


def test_every_relative_link_and_anchor_in_the_readme_and_docs_resolves() -> None:
    broken = [link for page in pages() for link in broken_links(page)]
    assert not broken, "\n".join(broken)


def test_every_setting_is_named_on_the_operations_page() -> None:
    operations = (REPO / "docs" / "operations.md").read_text()
    missing = [name for name in Settings.model_fields if f"`KEEL_{name.upper()}" not in operations]
    assert not missing
