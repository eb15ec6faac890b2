// MathJax 3 for the pages (pymdownx.arithmatex, generic mode: \(...\) and \[...\] inside .arithmatex)
// and for the tutorials' Markdown cells ($...$ and $$...$$ inside .jp-RenderedMarkdown, as in Jupyter).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown"
  }
};

document$.subscribe(() => {
  MathJax.startup.output.clearCache()
  MathJax.typesetClear()
  MathJax.texReset()
  MathJax.typesetPromise()
})
