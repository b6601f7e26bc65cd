/* Chairside page behaviour (progressive enhancement; every page works without it).
   - A form is sent once: a second tap on Save while the first is under way does nothing.
   - Entries kept across an idle-timeout lock are put back into the form after signing in again.
   - fetch() calls carry the CSRF token.
   - The light / dimmed-room theme toggle. */
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]');
  window.chairside = {
    csrfToken: csrf ? csrf.content : "",
    fetch: function (url, options) {
      options = options || {};
      options.headers = Object.assign({ "X-CSRFToken": window.chairside.csrfToken, "Accept": "application/json" }, options.headers || {});
      options.credentials = "same-origin";
      return fetch(url, options);
    }
  };

  // Send each form once.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.sending === "1") { event.preventDefault(); return; }
    form.dataset.sending = "1";
    form.querySelectorAll('button[type="submit"], button:not([type])').forEach(function (b) { b.setAttribute("aria-busy", "true"); });
    // If the browser does not navigate (e.g. validation blocked it), allow a new try.
    setTimeout(function () { form.dataset.sending = ""; form.querySelectorAll("[aria-busy]").forEach(function (b) { b.removeAttribute("aria-busy"); }); }, 8000);
  }, true);

  // Restore a kept draft: /some/page?draft=TOKEN
  function restoreDraft() {
    var params = new URLSearchParams(window.location.search);
    var token = params.get("draft");
    if (!token) return;
    // On the sign-in page itself there is nothing to fill: the token travels on with the sign-in form.
    if (!document.querySelector("form:not([data-no-draft])")) return;
    window.chairside.fetch("/drafts/" + encodeURIComponent(token)).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (draft) {
      if (!draft) return;
      var form = bestForm(draft.fields);
      if (!form) return;
      // Only now is the kept entry really in the form: drop the token from the address.
      params.delete("draft");
      var clean = window.location.pathname + (params.toString() ? "?" + params.toString() : "") + window.location.hash;
      window.history.replaceState(null, "", clean);
      Object.keys(draft.fields).forEach(function (name) {
        var values = draft.fields[name];
        var inputs = form.querySelectorAll('[name="' + CSS.escape(name) + '"]');
        inputs.forEach(function (input) {
          if (input.type === "hidden" && name === "row_version") return; // keep the version the page shows
          if (input.type === "checkbox" || input.type === "radio") {
            input.checked = values.indexOf(input.value) !== -1;
          } else if (input.tagName === "SELECT" && input.multiple) {
            Array.prototype.forEach.call(input.options, function (o) { o.selected = values.indexOf(o.value) !== -1; });
          } else {
            input.value = values[0] !== undefined ? values[0] : "";
          }
        });
      });
      var note = document.getElementById("draft-restored");
      if (note) note.hidden = false;
    });
  }

  function bestForm(fields) {
    var best = null, bestScore = 0;
    document.querySelectorAll("form:not([data-no-draft])").forEach(function (form) {
      var score = 0;
      Object.keys(fields).forEach(function (name) { if (form.querySelector('[name="' + CSS.escape(name) + '"]')) score++; });
      if (score > bestScore) { best = form; bestScore = score; }
    });
    return best;
  }

  function themeToggle() {
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.addEventListener("click", function () {
        var next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
        document.documentElement.dataset.theme = next;
        document.cookie = "theme=" + next + "; path=/; max-age=31536000; samesite=lax";
      });
    });
  }

  // A select that shows something else as soon as it changes (site pickers).
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[data-autosubmit]")) event.target.form.submit();
  });

  document.addEventListener("DOMContentLoaded", function () { restoreDraft(); themeToggle(); });
})();
