// modelcat UI: small enhancements over server-rendered pages that work without JavaScript.
// htmx does the fetching (search as you type, facets, chips, paging, the sources refresh).
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // "/" focuses the search box, unless the user is typing somewhere.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) return;
    var box = document.getElementById("q");
    if (box) {
      event.preventDefault();
      box.focus();
      box.select();
    }
  });

  // A long facet's own filter box narrows its values; it is not part of the search.
  function filterFacet(input) {
    var needle = input.value.trim().toLowerCase();
    input.closest("fieldset").querySelectorAll("li").forEach(function (item) {
      item.hidden = needle !== "" && item.textContent.toLowerCase().indexOf(needle) < 0;
    });
  }
  ["input", "change", "keydown"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      if (!event.target.classList || !event.target.classList.contains("facet-filter")) return;
      if (type === "keydown" && event.key !== "Enter") return;
      if (type === "keydown") event.preventDefault();
      event.stopPropagation();
      filterFacet(event.target);
    }, true);
  });

  // Picking models to compare belongs to the comparison form, not to the search.
  ["input", "change"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      if (event.target.getAttribute && event.target.getAttribute("form") === "compare") event.stopPropagation();
    }, true);
  });

  // Copy buttons.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button || !navigator.clipboard) return;
    navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  // Selects that apply themselves.
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[data-autosubmit]")) event.target.form.requestSubmit();
  });

  // After a swap that took the focused element away (a removed chip), keep keyboard users in the results.
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target.id !== "results") return;
    if (document.activeElement && document.activeElement !== document.body) return;
    var next = document.querySelector("#results .chips a") || document.getElementById("q");
    if (next) next.focus();
  });
})();
