// MathJax 3, set up as JupyterLab renders a notebook's math: $...$ and \(...\) inline, $$...$$ and
// \[...\] displayed, \$ for a dollar sign, LaTeX environments outside dollars. Code (<pre>, <code>) is
// never touched. An undefined macro is a TeX error (a red box that the browser test counts), not
// quietly red text. Once the page's math is typeset, <html> gets data-mathjax="typeset" (the browser
// test waits for it). Loaded before _static/mathjax/tex-chtml-full.js, which reads window.MathJax.
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    packages: {"[-]": ["noundefined"]}
  },
  startup: {
    pageReady: function () {
      return MathJax.startup.defaultPageReady().then(function () {
        document.documentElement.setAttribute("data-mathjax", "typeset");
      });
    }
  }
};
