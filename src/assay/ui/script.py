"""The dashboard's script (added after the report's): live progress and the archive button.

Kept as a Python string so that it ships with the package like any module.
"""

DASHBOARD_JS = r"""
/* Assay dashboard: poll live progress every 2 s; archive a run (only with --allow-writes). */
(function () {
  "use strict";
  var tokenMeta = document.querySelector('meta[name="assay-token"]');

  function num(x) { return Number(x).toLocaleString("en-US"); }

  function usd(x) { return "$" + Number(x).toFixed(4); }

  /* An optimize run: its phase, then calls (and dollars) spent against its hard budget. */
  function optimizeLabel(p) {
    var parts = [p.phase];
    parts.push(num(p.calls) + (p.max_calls ? " / " + num(p.max_calls) : "") + " calls");
    if (p.cost_usd !== null && p.cost_usd !== undefined) {
      parts.push(usd(p.cost_usd) + (p.max_cost_usd !== null ? " / " + usd(p.max_cost_usd) : ""));
    }
    if (p.phase !== p.status) parts.push(p.status);
    return parts.join(" · ");
  }

  function showProgress(box, p) {
    var share = p.phase ? p.fraction || 0 : p.planned ? p.done / p.planned : 0;
    var pct = Math.min(100, Math.round(100 * share));
    var bar = box.querySelector(".progress > span");
    if (bar) bar.style.width = pct + "%";
    var label = box.querySelector(".progress-label");
    var planned = p.planned === null ? "?" : p.planned;
    var text = p.phase ? optimizeLabel(p) : p.done + " / " + planned + " results · " + p.status;
    if (label) label.textContent = text;
    var list = box.querySelector(".progress-variants");
    if (!list) return;
    list.replaceChildren();
    p.variants.forEach(function (v) {
      var row = document.createElement("li");
      row.textContent = v.key + ": " + v.done + " / " + (v.planned === null ? "?" : v.planned);
      list.appendChild(row);
    });
  }

  function poll(box) {
    var url = box.getAttribute("data-progress-url");
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
        .then(function (p) {
          showProgress(box, p);
          if (p.status === "running") setTimeout(tick, 2000);
          else if (box.hasAttribute("data-reload")) window.location.reload();
        })
        .catch(function () { setTimeout(tick, 5000); });
    }
    tick();
  }

  function archive(button) {
    var wanted = button.getAttribute("data-archived") !== "true";
    button.disabled = true;
    fetch(button.getAttribute("data-archive-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "X-Assay-Token": tokenMeta ? tokenMeta.content : ""
      },
      body: JSON.stringify({ archived: wanted })
    }).then(function (r) {
      return r.json().then(function () {
        if (r.ok) { window.location.reload(); return; }
        button.disabled = false;
        button.textContent = "Refused (HTTP " + r.status + ")";
      });
    });
  }

  document.querySelectorAll("[data-progress-url]").forEach(poll);
  document.querySelectorAll("button[data-archive-url]").forEach(function (button) {
    button.addEventListener("click", function () { archive(button); });
  });
})();
"""
