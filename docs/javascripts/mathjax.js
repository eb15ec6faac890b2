// MathJax 3 for the pages (pymdownx.arithmatex, generic mode: \(...\) and \[...\] inside .arithmatex)
// and for the tutorials' Markdown cells ($...$ and $$...$$, as in Jupyter). MathJax searches only
// elements of class "arithmatex", so the text blocks of the notebooks' Markdown cells get that class
// (their code spans and links stay unsearched).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|md-ellipsis"  // md-ellipsis: headings with math in the navigation
  }
};

function markNotebookMath() {
  document.querySelectorAll(
    ".jp-RenderedMarkdown :is(p, li, td, th, h1, h2, h3, h4, h5, h6)"
  ).forEach((el) => el.classList.add("arithmatex"));
}

markNotebookMath();

document$.subscribe(() => {
  markNotebookMath()
  MathJax.startup.output.clearCache()
  MathJax.typesetClear()
  MathJax.texReset()
  MathJax.typesetPromise()
})
