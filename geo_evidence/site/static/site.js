/* Render each interactive chart from the Vega-Lite spec embedded in the page.
   Everything it needs is bundled under static/vendor: no request leaves the site.
   When rendering is impossible the static PNG inside the container stays visible. */
(function () {
  "use strict";
  function render(container) {
    var specEl = document.getElementById(container.getAttribute("data-vega-spec"));
    if (!specEl || typeof window.vegaEmbed !== "function") { return; }
    var spec = JSON.parse(specEl.textContent);
    var target = document.createElement("div");
    target.className = "vega-target";
    container.insertBefore(target, container.firstChild);
    // ast: true uses Vega's expression interpreter, so the page needs no eval (see the CSP).
    window.vegaEmbed(target, spec, { mode: "vega-lite", actions: false, renderer: "svg", ast: true })
      .then(function () { container.classList.add("rendered"); })
      .catch(function (err) {
        container.removeChild(target);
        console.warn("interactive chart unavailable, showing the static image:", err);
      });
  }
  function start() {
    var nodes = document.querySelectorAll("[data-vega-spec]");
    for (var i = 0; i < nodes.length; i++) { render(nodes[i]); }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
