"""MkDocs hook: a link from a page to a source file becomes a link to its API reference.

On GitHub, ``[`wgfsim/flows/mmd.py`](../../wgfsim/flows/mmd.py)`` opens the source;
the built site holds no source files, so the hook rewrites such a link into an
autorefs cross-reference, ``[...][wgfsim.flows.mmd]``, which mkdocstrings resolves
to the module's section of the API reference (and ``mkdocs build --strict`` fails
if no page documents it).
"""

import re

# ](../wgfsim/io/reader.py) or ](../../wgfsim/flows/mmd.py), with an optional #anchor (dropped)
_SOURCE_LINK = re.compile(r"\]\((?:\.\./)+(wgfsim/[A-Za-z0-9_/]+?)(?:/__init__)?\.py(?:#[^)]*)?\)")


def _autoref(match: re.Match) -> str:
    return "][" + match.group(1).replace("/", ".") + "]"


def on_page_markdown(markdown: str, **kwargs) -> str:
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


def on_page_content(html: str, **kwargs) -> str:
    return _ROLE.sub(_role, html)
