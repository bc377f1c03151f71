// MathJax 3 configuration for pymdownx.arithmatex (generic mode).
// MathJax itself is vendored in docs/javascripts/vendor/mathjax-3.2.2/ (tex-svg.js: one
// self-contained file, SVG output, no web fonts), so the site renders equations offline
// and links no external script. Without JavaScript the equations show as plain LaTeX.
window.MathJax = {
  tex: {
    inline: [["\\(", "\\)"]],
    display: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
  svg: {
    fontCache: "global",
  },
};
