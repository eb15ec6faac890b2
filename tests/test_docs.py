"""The documentation is checked: links, anchors, repository paths, the flow tables, the API reference.

- Every relative link in the Markdown (README, CHANGELOG, ``docs/``, the tutorials' Markdown
  cells) points at a file that exists, and every ``#anchor`` at a heading or an explicit
  ``<a id>`` of the target page. A heading's anchor must be the same as GitHub renders it
  (github-slugger) and as the site renders it (Python-Markdown's ``toc`` extension), so a
  link works in both places.
- Every repository path cited in the code, tests, scenarios and docs (``docs/math.md#two-atoms``
  in a docstring, ``wgfsim/flows/mmd.py`` in a page) exists, anchor included.
- The flow lists are generated from the registry at site build (``docs/_hooks.py``), so a new
  flow touches no page but its own: the generated table has one row per registered flow
  (``wgfsim.flows.names()``) with its energy, weights and a page link that resolves; the pages
  hold the markers; the generated navigation lists every flow page; no hand-written flow table
  is left.
- The API reference (``docs/api/``) documents every name of ``wgfsim.__all__`` and every
  public module of the package; every ``wgfsim.x.y`` a page or a docstring cross-reference
  names exists; the site's navigation holds every page once.
- ``wgfsim --version`` prints the version written in ``wgfsim/_version.py``, and the changelog
  keeps its format; ``.ci/run`` runs exactly the README's test command.
- (slow) ``mkdocs build --strict`` passes, and the heading anchors predicted here are the
  ones the built site rendered.

The truths are the files on disk, the registry and the renderers: the slug rules are the
two renderers' published algorithms, written out here and checked against the built site.
"""

from __future__ import annotations

import importlib
import pathlib
import pkgutil
import re
import unicodedata

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


# --------------------------------------------------------------------------- Markdown sources

def _tutorial_markdown(path: pathlib.Path) -> str:
    """The Markdown cells of a Jupytext percent-format notebook, comment markers removed."""
    out, in_md = [], False
    for line in path.read_text().splitlines():
        if line.startswith("# %%"):
            in_md = "[markdown]" in line
            continue
        if in_md:
            out.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    return "\n".join(out)


def markdown_sources() -> dict[pathlib.Path, str]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.rglob("*.md"))]
    texts = {p: p.read_text() for p in files if p.exists()}
    for p in sorted((DOCS / "tutorials").glob("*.py")):
        texts[p] = _tutorial_markdown(p)
    return texts


def _parser():
    """CommonMark with GFM tables and dollar math (whose brackets are not links), as the two renderers read it."""
    markdown_it = pytest.importorskip("markdown_it")  # markdown-it-py, in the test extra
    dollarmath = pytest.importorskip("mdit_py_plugins.dollarmath")
    return markdown_it.MarkdownIt("commonmark").enable("table").use(dollarmath.dollarmath_plugin)


def _inline_tokens(text: str):
    for tok in _parser().parse(text):
        if tok.type == "inline":
            yield from tok.children or ()


def links(text: str) -> list[str]:
    """The targets of the Markdown links and images of ``text`` (not those inside code or math)."""
    out = []
    for tok in _inline_tokens(text):
        if tok.type == "link_open":
            out.append(tok.attrs["href"])
        elif tok.type == "image":
            out.append(tok.attrs["src"])
    return out


# --------------------------------------------------------------------------- anchors

def headings(text: str) -> list[str]:
    """The rendered text of each heading: inline code and math keep their content, markup is dropped."""
    toks = _parser().parse(text)
    out = []
    for i, tok in enumerate(toks):
        if tok.type == "heading_open":
            parts = []
            for child in toks[i + 1].children or ():
                if child.type in ("text", "code_inline"):
                    parts.append(child.content)
                elif child.type == "math_inline":
                    parts.append(f"${child.content}$")
            out.append("".join(parts))
    return out


def github_slug(text: str) -> str:
    """github-slugger: lower case, punctuation removed (letters, digits, '_', '-', spaces kept), each space a '-'."""
    text = text.lower()
    text = "".join(c for c in text if c.isalnum() or c in "_- " or unicodedata.category(c).startswith("M"))
    return text.replace(" ", "-")


def site_slug(text: str) -> str:
    """Python-Markdown ``toc.slugify``: NFKD to ASCII, ``[^\\w\\s-]`` removed, lower case, runs of '-'/space a '-'."""
    text = re.sub(r"\$([^$]*)\$", r"\(\1\)", text)  # arithmatex keeps the TeX of inline math in the heading
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _unique(slugs: list[str], sep: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for s in slugs:
        if s in seen:
            seen[s] += 1
            out.add(f"{s}{sep}{seen[s]}")
        else:
            seen[s] = 0
            out.add(s)
    return out


def anchors(text: str) -> set[str]:
    """The anchors a page has on both GitHub and the site: explicit HTML ids, and heading slugs both agree on."""
    explicit = set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))
    heads = headings(text)
    github = _unique([github_slug(h) for h in heads], "-")
    site = _unique([site_slug(h) for h in heads], "_")
    return explicit | (github & site)


def test_slug_rules_on_known_headings():
    # GitHub and the site agree on plain headings and differ where runs of punctuation collapse
    (h,) = headings("### `[generator]` (only with `\"generator\"` in `run.methods`)")
    assert github_slug(h) == site_slug(h) == "generator-only-with-generator-in-runmethods"
    assert github_slug("A - B") == "a---b" and site_slug("A - B") == "a-b"
    assert anchors("# A\n## A\n") == {"a"}  # second "a": GitHub "a-1", the site "a_1": no common anchor
    assert anchors('<a id="x"></a>\n## Y\n') == {"x", "y"}


# --------------------------------------------------------------------------- relative links

def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target)) or target.startswith("//")


def _check_target(src: pathlib.Path, target: str, anchor_cache: dict) -> str | None:
    """None if ``target`` (relative to ``src``) and its anchor exist, else what is wrong."""
    path_part, _, anchor = target.partition("#")
    dest = (src.parent / path_part).resolve() if path_part else src
    if not dest.exists():
        return f"{target}: no such file or folder"
    if src.is_relative_to(DOCS) and path_part:
        # the site holds docs/ only; links to modules become API-reference links, and the changelog is
        # included as a page (docs/_hooks.py)
        inside = dest.is_relative_to(DOCS) and dest.is_file()
        module = dest.suffix == ".py" and dest.is_relative_to(ROOT / "wgfsim")
        if not (inside or module or dest == ROOT / "CHANGELOG.md"):
            return f"{target}: a page of the site must link to a file in docs/, a module of wgfsim/ or the changelog"
    if anchor and dest.suffix == ".md":
        if dest not in anchor_cache:
            anchor_cache[dest] = anchors(dest.read_text())
        if anchor not in anchor_cache[dest]:
            return f"{target}: no anchor #{anchor} in {dest.relative_to(ROOT)}"
    return None


def test_relative_links_and_anchors_exist():
    cache: dict = {}
    bad, n = [], 0
    for src, text in markdown_sources().items():
        for target in links(text):
            if _is_external(target):
                continue
            n += 1
            problem = _check_target(src, target, cache)
            if problem:
                bad.append(f"{src.relative_to(ROOT)}: {problem}")
    assert n > 100, n  # the pages do link to each other; a parser that finds nothing must fail
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- paths cited anywhere

CITING = ["wgfsim/**/*.py", "tests/**/*.py", "benchmarks/**/*.py", "scenarios/**/*.toml", "docs/**/*.md",
          "docs/**/*.py", "README.md", "CHANGELOG.md", "pyproject.toml", "mkdocs.yml", ".ci/run"]
_CITED = re.compile(r"(?<![\w./-])((?:docs|scenarios|tests|benchmarks|wgfsim)/[\w./-]*[\w/])(#[\w-]*\w)?")
_PLACEHOLDER = re.compile(r"(?:^|/)(?:(?:test_)?[A-Z][A-Z_]+|[^/]*[*<>{}][^/]*)(?:\.\w+)?(?:/|$)")


def cited_paths():
    """(file, line number, path, anchor) of every repository path written in the citing files."""
    for pattern in CITING:
        for f in sorted(ROOT.glob(pattern)):
            if f == pathlib.Path(__file__).resolve() or "/_deprecated/" in str(f):
                continue  # this file's examples; the deprecated aliases name the old paths on purpose
            for i, line in enumerate(f.read_text().splitlines(), 1):
                for m in _CITED.finditer(line):
                    path, anchor = m.group(1), (m.group(2) or "")[1:]
                    if _PLACEHOLDER.search(path) or path.endswith((".h5", ".png", ".gif", ".npy")):
                        continue  # NAME.md- and test_NAME.py-style templates and outputs the docs tell you to write
                    yield f, i, path.rstrip("."), anchor


def test_cited_repository_paths_and_anchors_exist():
    cache: dict = {}
    bad, n = [], 0
    for f, i, path, anchor in cited_paths():
        n += 1
        dest = ROOT / path
        where = f"{f.relative_to(ROOT)}:{i}"
        if not dest.exists():
            bad.append(f"{where}: {path} does not exist")
        elif anchor and dest.suffix == ".md":
            if dest not in cache:
                cache[dest] = anchors(dest.read_text())
            if anchor not in cache[dest]:
                bad.append(f"{where}: {path} has no anchor #{anchor}")
    assert n > 100, n
    assert not bad, "\n".join(bad)


def test_no_merge_conflict_markers():
    """No committed file of the citing set holds a merge's conflict markers (a page that reads as two versions)."""
    bad = []
    for pattern in CITING:
        for f in sorted(ROOT.glob(pattern)):
            for i, line in enumerate(f.read_text().splitlines(), 1):
                if re.match(r"^(<{7} |={7}$|>{7} )", line):
                    bad.append(f"{f.relative_to(ROOT)}:{i}: {line}")
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- flow tables

def _tables(text: str) -> list[list[list[str]]]:
    """Every table of ``text``: rows (header first) of cells' Markdown source.

    Parsed as GitHub parses tables (GFM): a ``|`` splits a cell even inside a code span, so a
    table cell that needs one uses another character (``‖``).
    """
    tables, row, cur = [], None, None
    for tok in _parser().parse(text):
        if tok.type == "table_open":
            cur = []
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "inline" and row is not None:
            row.append(tok.content.strip())
        elif tok.type == "tr_close":
            cur.append(row)
            row = None
        elif tok.type == "table_close":
            tables.append(cur)
    return tables


def _table_rows(text: str, first_header: str) -> list[list[str]]:
    """The body rows of the first table whose first header cell is ``first_header``."""
    return next(t for t in _tables(text) if t[0][0] == first_header)[1:]


def _flow_of(cell: str) -> str:
    m = re.fullmatch(r"`(\w+)`", cell)
    assert m, cell
    return m.group(1)


@pytest.fixture(scope="module")
def registry():
    from wgfsim import flows

    return {name: flows.get(name) for name in flows.names()}


def _generated(page: str) -> str:
    """The Markdown of ``docs/page`` as the site renders it: its flow-list markers replaced (docs/_hooks.py)."""
    return _hooks().generate_flow_lists((DOCS / page).read_text(), page)


def test_index_flow_table_is_generated_from_the_registry(registry):
    source = (DOCS / "index.md").read_text()
    assert re.search(r"^<!-- flows-table -->$", source, re.M) and "`wgfsim flows`" in source
    assert not [t for t in _tables(source) if t[0][0] == "flow"], "a hand-written flow table in docs/index.md"
    rows = _table_rows(_generated("index.md"), "flow")
    assert [_flow_of(r[0]) for r in rows] == list(registry)
    for flow, what, energy, weights, page in rows:
        rec = registry[_flow_of(flow)]
        assert what and (energy != "no") == (rec.energy is not None), flow
        if rec.energy is not None:
            assert energy.strip("`") == rec.energy_name.replace("||", "‖"), flow
        assert weights == ("yes" if rec.weights else "no"), flow
        (target,) = links(page)
        assert (DOCS / target).resolve() == (ROOT / rec.doc).resolve() and (ROOT / rec.doc).exists(), flow
        assert _check_target(DOCS / "index.md", target, {}) is None, flow


def test_user_guide_flow_lists_are_generated_from_the_registry(registry):
    source = (DOCS / "user_guide.md").read_text()
    assert "<!-- flow-names -->" in source and "<!-- energy-flows -->" in source
    text = _generated("user_guide.md")
    # the [[flow]] table's `name` row
    name_row = next(r for t in _tables(text) for r in t if r[0] == "`name`" and "registered flows" in r[-1])
    assert re.findall(r"`(\w+)`", name_row[1].partition(":")[2]) == list(registry)
    # the sentence on `wgfsim.energy` names the gradient flows
    sentence = re.search(r"`wgfsim\.energy\(name, x, y, \.\.\.\)` is the functional of the gradient flows.*?\):(.*?)\.",
                         text, re.S).group(1)
    assert re.findall(r"`(\w+)`", sentence) == [n for n, r in registry.items() if r.energy is not None]


def test_readme_names_no_flow_table():
    """The README points at ``wgfsim flows`` and the index (a README cannot be generated)."""
    readme = (ROOT / "README.md").read_text()
    assert not [t for t in _tables(readme) if t[0][0] == "flow"]
    assert "`wgfsim flows`" in readme and "docs/index.md#the-flows" in links(readme)


def _site_nav() -> list:
    """mkdocs.yml's navigation as the site builds it (the hook's ``on_config`` fills the Flows section)."""
    import yaml  # pyyaml, in the test extra

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("", lambda loader, suffix, node: None)  # !!python/name and other tags
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)
    return _hooks().on_config({"nav": config["nav"]})["nav"]


def _nav_pages(nav) -> list[str]:
    out = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        out.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return out


def test_site_navigation_lists_every_flow_page(registry):
    assert re.search(r"^  - Flows: \[\]", (ROOT / "mkdocs.yml").read_text(), re.M), "the Flows section is generated"
    flows_section = next(item["Flows"] for item in _site_nav() if isinstance(item, dict) and "Flows" in item)
    assert flows_section == [{n: f"flows/{n}.md"} for n in registry]
    assert all((ROOT / r.doc).exists() for r in registry.values())


# --------------------------------------------------------------------------- API reference

def _directives() -> dict[str, bool]:
    """``::: module`` directives of docs/api/ -> whether they render the submodules."""
    out = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^::: ([\w.]+)\s*$", line)
            if m:
                opts = []
                for nxt in lines[i + 1:]:
                    if nxt and not nxt.startswith(" "):
                        break
                    opts.append(nxt)
                out[m.group(1)] = any(re.match(r"\s+show_submodules:\s*true", o) for o in opts)
    return out


# documented elsewhere, not in the API reference
NOT_IN_REFERENCE = {
    "wgfsim.cli": "the command line: docs/user_guide.md",
}


def public_modules() -> list[str]:
    import wgfsim

    names = []
    for info in pkgutil.walk_packages(wgfsim.__path__, "wgfsim.", onerror=lambda name: None):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts[1:]):
            continue
        names.append(info.name)
    return names


def test_api_reference_covers_every_public_module():
    directives = _directives()
    mods = public_modules()
    assert "wgfsim.methods.generator.train" in mods and "wgfsim.flows.mmd" in mods

    def covered(name: str) -> bool:
        if name in directives:
            return True
        parts = name.split(".")
        return any(directives.get(".".join(parts[:k])) for k in range(2, len(parts)))

    missing = [m for m in mods if not covered(m) and m not in NOT_IN_REFERENCE]
    assert not missing, f"add these modules to docs/api/ (a ::: directive, or show_submodules on their package): {missing}"


def test_api_reference_lists_every_root_name():
    import wgfsim

    index = (DOCS / "api" / "index.md").read_text()
    for name in wgfsim.__all__:
        assert f"`wgfsim.{name}`" in index, name
        getattr(wgfsim, name)  # the lazy root resolves every name it exports
    # the functions and the class link to where they are defined (mkdocs build --strict resolves the links)
    for name in ("velocity", "energy", "Field", "lse_bary", "open_run", "open_sweep"):
        row = next(line for line in index.splitlines() if line.startswith(f"| `wgfsim.{name}` |"))
        assert re.search(rf"\]\[wgfsim\.[\w.]+\.{name}\]", row), row


# --------------------------------------------------------------------------- version and changelog

def test_version_command_and_changelog(capsys):
    import ast

    from wgfsim import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out.strip()
    # the version as written in the leaf module, read without importing it
    tree = ast.parse((ROOT / "wgfsim" / "_version.py").read_text())
    written = next(n.value.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__version__")
    assert printed == f"wgfsim {written}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", written)
    # Keep a Changelog: an Unreleased section, and every version heading dated, newest first
    changelog = (ROOT / "CHANGELOG.md").read_text()
    heads = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", changelog, re.M)
    assert heads[0] == ("Unreleased", "")
    versions = [tuple(map(int, v.split("."))) for v, _ in heads[1:]]
    assert versions == sorted(versions, reverse=True) and all(d for _, d in heads[1:])
    assert tuple(map(int, written.split("."))) >= versions[0]  # the package is not older than the last entry


# --------------------------------------------------------------------------- names the docs cite

_DOTTED = re.compile(r"(?<![\w/.-])wgfsim(?:\.[A-Za-z_]\w*)+")
DEPRECATED = {"store", "analysis", "experiments", "generator", "particles", "snapshot"}  # wgfsim._deprecated


def _resolve(dotted: str):
    """Import the longest module prefix of ``dotted``, then follow attributes; raise if any part is missing."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ModuleNotFoundError:
            continue
        for attr in parts[k:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def _paragraphs(text: str):
    """(first line number, paragraph, the heading above it) for each block of non-blank lines."""
    heading, start, block = "", 1, []
    for i, line in enumerate(text.splitlines() + [""], 1):
        if line.strip():
            if not block:
                start = i
            block.append(line)
            if line.startswith("#"):
                heading = line
        elif block:
            yield start, "\n".join(block), heading
            block = []


_ROLE_TARGET = re.compile(r":(?:func|meth|class|mod|attr|data|obj|exc):`~?(wgfsim(?:\.\w+)+)`")


def test_python_names_in_the_docs_exist():
    """Every ``wgfsim.x.y`` a page or a docstring's cross-reference names exists.

    A page may name a deprecated alias, or a removed name, only where its paragraph or section says so.
    """
    cited = []  # (where, name, context)
    for src, text in markdown_sources().items():
        for start, para, heading in _paragraphs(text):
            for dotted in _DOTTED.findall(para):
                dotted = dotted.rstrip(".")
                if not dotted.endswith((".py", ".md", ".h5", ".toml")):  # file names: the path tests
                    cited.append((f"{src.relative_to(ROOT)}:{start}", dotted, para + "\n" + heading))
    for f in sorted((ROOT / "wgfsim").rglob("*.py")):
        if "_deprecated" in f.parts:
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            for dotted in _ROLE_TARGET.findall(line):
                cited.append((f"{f.relative_to(ROOT)}:{i}", dotted, ""))
    bad = []
    for where, dotted, context in cited:
        if dotted.split(".")[1] in DEPRECATED:
            if not re.search(r"deprecat|gone|alias", context, re.I):
                bad.append(f"{where}: {dotted} is a deprecated alias")
            continue  # named as deprecated: tests/test_layout.py checks the aliases
        if re.search(r"\bremoved\b|\bis gone\b|^#+ Removed", context, re.I | re.M):
            continue  # a name the changelog or a page says was removed
        try:
            _resolve(dotted)
        except (ImportError, AttributeError) as err:
            bad.append(f"{where}: {dotted}: {type(err).__name__}: {err}")
    assert len(cited) > 100, len(cited)
    assert not bad, "\n".join(bad)


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).splitlines()
    test_cmd = next(line for line in block if "pytest" in line)
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert ci == [test_cmd]


# --------------------------------------------------------------------------- the site's navigation and hooks

def test_site_navigation_holds_every_page():
    nav = _nav_pages(_site_nav())
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    pages |= {p.relative_to(DOCS).as_posix() for p in (DOCS / "tutorials").glob("[0-9]*.py")}
    assert sorted(nav) == sorted(set(nav)), "a page listed twice"
    assert set(nav) == pages


def _hooks():
    import importlib.util

    spec = importlib.util.spec_from_file_location("wgfsim_docs_hooks", DOCS / "_hooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_site_links_to_sources_become_links_to_documented_modules():
    """A page's link to a source file becomes an autorefs link to that module, which the reference documents."""
    from types import SimpleNamespace

    hooks = _hooks()
    page = SimpleNamespace(file=SimpleNamespace(src_uri="flows/mmd.md"))
    out = hooks.on_page_markdown("[`mmd.py`](../../wgfsim/flows/mmd.py) and [log](../../CHANGELOG.md#010)", page=page)
    assert out == "[`mmd.py`][wgfsim.flows.mmd] and [log](../changelog.md#010)"
    directives, modules = _directives(), set(public_modules())
    n = 0
    for src, text in markdown_sources().items():
        if src.suffix != ".md" or not src.is_relative_to(DOCS):
            continue
        for match in hooks._SOURCE_LINK.finditer(text):
            n += 1
            ident = match.group(1).replace("/", ".")
            covered = ident in directives or any(directives.get(ident.rsplit(".", k)[0]) for k in (1, 2))
            assert ident in modules and covered, f"{src.relative_to(ROOT)}: {ident} is not in the reference"
    assert n >= 10  # the flow pages link their modules


@pytest.mark.slow
def test_site_builds_strict(tmp_path):
    """``mkdocs build --strict`` (the [docs] extra): every page, the API reference and the executed tutorials."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocs_jupyter")
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-4000:]
    html = (tmp_path / "site" / "api" / "flows" / "index.html").read_text()
    assert 'id="wgfsim.flows.velocity"' in html  # the reference rendered the docstrings
    tutorial = (tmp_path / "site" / "tutorials" / "02_sweep" / "index.html").read_text()
    assert "data:image/png;base64" in tutorial and 'href="../../math/#two-atoms"' in tutorial
    # the heading anchors the link test predicts are the ones the site rendered
    for md in sorted(DOCS.rglob("*.md")):
        rel = md.relative_to(DOCS).with_suffix("")
        if rel.parts[0] == "api" or rel.name == "changelog":
            continue  # generated headings
        out = tmp_path / "site" / (rel.parent if rel.name == "index" else rel) / "index.html"
        rendered = set(re.findall(r'<h[1-6] id="([^"]+)"', out.read_text()))
        assert rendered == _unique([site_slug(h) for h in headings(md.read_text())], "_"), md


def test_docstrings_parse_as_numpy_style_without_warnings():
    """The API reference's parser (griffe, NumPy style) reads every docstring without a warning.

    ``mkdocs build --strict`` fails on such a warning (a paragraph under ``Parameters`` read as a
    parameter, a ``Returns`` line without its section); this catches it without building the site.
    """
    griffe = pytest.importorskip("griffe")
    import logging

    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    logger = logging.getLogger("griffe")
    logger.addHandler(handler)
    try:
        package = griffe.load("wgfsim", search_paths=[str(ROOT)], docstring_parser="numpy", allow_inspection=False)
        n = 0

        def walk(obj):
            nonlocal n
            for member in obj.members.values():
                if member.is_alias:
                    continue
                if member.docstring:
                    member.docstring.parsed
                    n += 1
                if member.is_module or member.is_class:
                    walk(member)

        walk(package)
    finally:
        logger.removeHandler(handler)
    assert n > 300, n
    assert not messages, "\n".join(messages)
