// Loaded on pages with widgets, after require.js and before the ipywidgets HTML manager (embed-amd.js).
(function () {
  // The manager's modules are defined inside embed-amd.js under names like "@jupyter-widgets/html-manager/dist/..."
  // and "@jupyter-widgets/controls"; each sets webpack's public path from its own module URI, which require.js
  // resolves against the page's folder, and webpack loads the widget fonts from there (404s). Map every one onto
  // the vendored copy, found relative to this script (_static/); the longer prefix wins for the embed module. The
  // controls' fonts had been left out until 2026-12-07: a CI run's browser test caught notebooks/@jupyter-widgets/
  // *.woff2 404s on the models page, once in seven runs (the fonts load only when a glyph needs them).
  var here = document.currentScript.src, vendored = new URL("jupyter-widgets", here).href;
  require.config({paths: {"@jupyter-widgets/html-manager/dist": vendored, "@jupyter-widgets": vendored}});

  // ipywidgets 8 typesets HTML and Label widgets with the MathJax 2 API (MathJax.Hub.Queue); the book loads
  // MathJax 3. Translate the one call, once MathJax 3 has replaced its configuration object.
  function hub() {
    var mj = window.MathJax;
    if (!mj || mj.Hub) return;
    mj.Hub = {Queue: function (job) {
      var element = job && job[2];
      if (window.MathJax.typesetPromise) {
        window.MathJax.typesetPromise(element ? [element] : undefined).catch(function (e) { console.warn(e); });
      }
    }};
  }
  hub();
  document.addEventListener("DOMContentLoaded", hub);
})();
