"""MkDocs hooks: the Markdown pages read the same on GitHub and on the site.

- A link from a page to a source file (``[`wgfsim/flows/mmd.py`](../../wgfsim/flows/mmd.py)``
  opens the source on GitHub) becomes an autorefs cross-reference, ``[...][wgfsim.flows.mmd]``,
  which mkdocstrings resolves to the module's section of the API reference (the site holds no
  source files; ``mkdocs build --strict`` fails if no page documents the module).
- A link to ``../CHANGELOG.md`` becomes a link to the changelog page, which includes it.
- Docstrings' Sphinx roles (``:func:`wgfsim.flows.velocity```) lose the role prefix, and a fully
  qualified name becomes a link into the API reference.
- On the API pages, a docstring's citation of a page (``docs/math.md#two-atoms``) becomes a link.
- In the tutorials (notebooks, rendered by nbconvert), relative links to ``.md`` pages become
  the pages' URLs.
- The flow lists are generated from the registry (``wgfsim.flows``), so a new flow touches no page
  but its own: the ``Flows`` section of the navigation (``mkdocs.yml`` holds ``- Flows: []``) lists
  every registered flow's page, the marker line ``<!-- flows-table -->`` becomes the table of the
  flows, and the inline markers ``<!-- flow-names -->`` and ``<!-- energy-flows -->`` become the
  names of every flow and of the gradient flows.
"""

import logging
import pathlib
import posixpath
import re
import sys

log = logging.getLogger("mkdocs.plugins.wgfsim")  # under "mkdocs": a warning here fails `mkdocs build --strict`

# ](../wgfsim/io/reader.py) or ](../../wgfsim/flows/mmd.py), with an optional #anchor (dropped)
_SOURCE_LINK = re.compile(r"\]\((?:\.\./)+(wgfsim/[A-Za-z0-9_/]+?)(?:/__init__)?\.py(?:#[^)]*)?\)")


def _autoref(match: re.Match) -> str:
    return "][" + match.group(1).replace("/", ".") + "]"


# ](../CHANGELOG.md): the repository's changelog, which the site includes as changelog.md
_CHANGELOG_LINK = re.compile(r"\]\((?:\.\./)+CHANGELOG\.md(#[^)]*)?\)")


# --------------------------------------------------------------------------- the flow lists, from the registry

_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _registry() -> list:
    """The registered flows' records (``wgfsim.flows.get``), in registration order."""
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))  # the checkout's package, also where it is not installed
    from wgfsim import flows

    return [flows.get(name) for name in flows.names()]


def flow_pages() -> list[dict[str, str]]:
    """The ``Flows`` section of the navigation: ``{name: page}`` for each flow, its page relative to ``docs/``."""
    return [{rec.name: posixpath.relpath(rec.doc, "docs")} for rec in _registry()]


def _cell(text: str) -> str:
    """Registry text as a table cell: Markdown's markup characters escaped, ``||`` a norm (a ``|`` splits a cell)."""
    text = text.replace("||", "‖")
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", text)


def flow_table(page_uri: str = "index.md") -> str:
    """The table of the flows (name, what, energy, weights, page), links relative to the page ``page_uri``."""
    here = posixpath.dirname(page_uri)
    rows = ["| flow | what | gradient flow (energy) | weights | page |", "| --- | --- | --- | --- | --- |"]
    for rec in _registry():
        energy = f"`{rec.energy_name.replace('||', '‖')}`" if rec.energy is not None else "no"
        link = posixpath.relpath(posixpath.relpath(rec.doc, "docs"), here or ".")
        rows.append(f"| `{rec.name}` | {_cell(rec.summary)} | {energy} | {'yes' if rec.weights else 'no'} "
                    f"| [{rec.name}]({link}) |")
    return "\n".join(rows)


def _names(names: list[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    return ": " + (", ".join(quoted[:-1]) + " and " + quoted[-1] if len(quoted) > 1 else "".join(quoted))


_MARKERS = {
    re.compile(r"^<!-- flows-table -->$", re.M): lambda uri: flow_table(uri),
    re.compile(r"<!-- flow-names -->"): lambda uri: _names([r.name for r in _registry()]),
    re.compile(r"<!-- energy-flows -->"): lambda uri: _names([r.name for r in _registry() if r.energy is not None]),
}


def generate_flow_lists(markdown: str, page_uri: str) -> str:
    """``markdown`` with each flow-list marker replaced by the list it stands for (see the module docstring)."""
    for marker, make in _MARKERS.items():
        if marker.search(markdown):
            markdown = marker.sub(lambda m, make=make: make(page_uri), markdown)
    return markdown


def with_flow_pages(nav: list) -> list:
    """``nav`` with the ``Flows`` section's entries (``- Flows: []`` in mkdocs.yml) the registry's pages."""
    out = []
    for item in nav:
        if isinstance(item, dict) and list(item) == ["Flows"]:
            item = {"Flows": flow_pages()}
        out.append(item)
    return out


def on_config(config, **kwargs):
    config["nav"] = with_flow_pages(config["nav"])
    return config


# --------------------------------------------------------------------------- links

def on_page_markdown(markdown: str, *, page, **kwargs) -> str:
    markdown = generate_flow_lists(markdown, page.file.src_uri)
    up = "../" * page.file.src_uri.count("/")
    markdown = _CHANGELOG_LINK.sub(lambda m: f"]({up}changelog.md{m.group(1) or ''})", markdown)
    return _SOURCE_LINK.sub(_autoref, markdown)


# Docstrings cite objects with Sphinx roles (:func:`wgfsim.flows.velocity`), which Markdown renders as
# ":func:<code>...</code>". The role prefix is dropped; a fully qualified name becomes an optional
# autorefs cross-reference (a link where the API reference documents it, plain code elsewhere).
_ROLE = re.compile(r":(?:func|meth|class|mod|attr|data|obj|exc):<code>~?([^<]+)</code>")


def _role(match: re.Match) -> str:
    name = match.group(1)
    shown = name.split(".")[-1] if match.group(0).startswith(":", 0) and "<code>~" in match.group(0) else name
    if name.startswith("wgfsim."):
        return f'<autoref identifier="{name}" optional><code>{shown}</code></autoref>'
    return f"<code>{shown}</code>"


# Docstrings cite the docs as repository paths (docs/math.md#two-atoms); on the API pages such a
# citation, outside code listings, becomes a link to the page and anchor.
_DOC_CITE = re.compile(r"(?<![\w/.-])docs/([\w/.-]+?\.md)(#[\w-]*\w)?")
_PRE = re.compile(r"(<pre\b.*?</pre>)", re.S)
_TEXT = re.compile(r">([^<]+)<")


def _cite_links(html: str, page) -> str:
    up = "../" * page.url.count("/")

    def link(match: re.Match) -> str:
        target = match.group(1)
        if target not in _DOC_URLS:
            return match.group(0)
        return f'<a href="{up}{_DOC_URLS[target]}{match.group(2) or ""}">{match.group(0)}</a>'

    def text(match: re.Match) -> str:
        return ">" + _DOC_CITE.sub(link, match.group(1)) + "<"

    parts = _PRE.split(html)
    return "".join(part if part.startswith("<pre") else _TEXT.sub(text, part) for part in parts)


def on_page_content(html: str, *, page, **kwargs) -> str:
    html = _ROLE.sub(_role, html)
    if page.file.src_uri.startswith("api/"):
        html = _cite_links(html, page)
        html = html.replace("::</p>", ":</p>")  # reST's literal-block marker ends a paragraph before a code block
    return html


# The tutorials are notebooks: nbconvert renders their Markdown cells to HTML without MkDocs' link
# resolution, so ``../math.md#two-atoms`` would stay a link to a .md file. After the page is built, each
# relative link to a page of the site becomes the URL of that page; a link to a missing page is a warning.
_DOC_URLS: dict[str, str] = {}
_HREF = re.compile(r'href="(?!https?:|mailto:|#)([^"#]+\.md)(#[^"]*)?"')


def on_files(files, **kwargs):
    _DOC_URLS.clear()
    _DOC_URLS.update({f.src_uri: f.url for f in files.documentation_pages()})
    return files


def on_post_page(output: str, *, page, **kwargs) -> str:
    if not page.file.src_uri.endswith((".py", ".ipynb")):
        return output
    here = posixpath.dirname(page.file.src_uri)

    def fix(match: re.Match) -> str:
        target = posixpath.normpath(posixpath.join(here, match.group(1)))
        if target not in _DOC_URLS:
            log.warning("%s: link to %s, which is not a page of the site", page.file.src_uri, match.group(1))
            return match.group(0)
        url = posixpath.relpath("/" + _DOC_URLS[target], "/" + page.url)
        if _DOC_URLS[target].endswith("/") and not url.endswith("/"):
            url += "/"
        return f'href="{url}{match.group(2) or ""}"'

    return _HREF.sub(fix, output)
