// Loaded on pages with widgets, after require.js and before the ipywidgets HTML manager (embed-amd.js).
(function () {
  // The manager's modules are defined inside embed-amd.js under names like "@jupyter-widgets/html-manager/dist/...";
  // require.js resolves those names against the page's folder, and webpack loads the widget fonts from there
  // (404s). Map them onto the vendored copy, found relative to this script (_static/).
  var here = document.currentScript.src;
  require.config({paths: {"@jupyter-widgets/html-manager/dist": new URL("jupyter-widgets", here).href}});

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
