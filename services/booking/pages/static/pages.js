// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  var body = document.body;
  var detected = null;
  try { detected = Intl.DateTimeFormat().resolvedOptions().timeZone || null; } catch (e) { detected = null; }

  if (detected && body.dataset.tzChosen !== "1") {
    if (body.dataset.tzRedirect === "1" && detected !== body.dataset.tz) {
      // Show the times in the patient's own zone: reload once with the zone the browser reports.
      var here = new URL(window.location.href);
      here.searchParams.set("tz", detected);
      window.location.replace(here.toString());
      return;
    }
    document.querySelectorAll("a[data-carry-tz]").forEach(function (link) {
      var url = new URL(link.href);
      if (!url.searchParams.has("tz")) { url.searchParams.set("tz", detected); link.href = url.toString(); }
    });
  }
  if (detected && detected === body.dataset.tz) {
    var mark = document.getElementById("tz-detected");
    if (mark) { mark.hidden = false; }
  }

  // The time-zone search narrows the list (options that do not match are hidden) and selects the first match.
  var search = document.querySelector("input[data-zone-search]");
  var zones = document.getElementById("tz");
  if (search && zones) {
    search.addEventListener("input", function () {
      var words = search.value.trim().toLowerCase().replace(/[_/]/g, " ").split(/\s+/);
      var first = null;
      zones.querySelectorAll("option").forEach(function (option) {
        var text = (option.value + " " + option.textContent).toLowerCase().replace(/[_/]/g, " ");
        var match = words.every(function (w) { return text.indexOf(w) !== -1; });
        option.hidden = !match;
        if (match && !first) { first = option; }
      });
      zones.querySelectorAll("optgroup").forEach(function (group) {
        group.hidden = !group.querySelector("option:not([hidden])");
      });
      if (first) { zones.value = first.value; }
    });
  }

  var problem = document.getElementById("error-summary") || document.getElementById("slot-taken");
  if (problem) { problem.focus(); }

  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]");
      if (button) { window.setTimeout(function () { button.disabled = true; }, 0); }
    });
  });
})();
