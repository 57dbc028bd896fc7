/* Assay report: the per-sample explorer. Data comes from a JSON island and is written into
   the page with textContent only, never as HTML. No library, no network. */
(function () {
  "use strict";
  var PAGE = 40;
  var PREVIEW_CHARS = 300; // a long input or reference shows this much until expanded
  var PREVIEW_LINES = 6;

  function make(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function scorePill(cell) {
    if (cell.status === "scored") {
      var tone = cell.score >= 1 ? "good" : cell.score <= 0 ? "bad" : "mid";
      return make("span", "pill " + tone, cell.score.toFixed(2));
    }
    var tones = { error: "bad", unscored: "warn", missing: "mid" };
    return make("span", "pill " + (tones[cell.status] || "mid"), cell.status);
  }

  function preview(text) {
    var cut = text.slice(0, PREVIEW_CHARS);
    if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1); // never half a character
    return cut.split("\n").slice(0, PREVIEW_LINES).join("\n");
  }

  function field(label, text, cls) {
    var box = make("div", cls);
    box.appendChild(make("div", "field-label", label));
    var full = text === null || text === undefined ? "" : String(text);
    var short = preview(full);
    if (short === full) {
      box.appendChild(make("div", "text", full));
      return box;
    }
    var body = make("div", "text clipped", short + "…");
    var more = "Show all " + full.length.toLocaleString("en-US") + " characters";
    var toggle = make("button", "button toggle", more);
    toggle.type = "button";
    toggle.setAttribute("aria-expanded", "false");
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      body.textContent = open ? full : short + "…";
      body.className = open ? "text" : "text clipped";
      toggle.textContent = open ? "Show less" : more;
      toggle.setAttribute("aria-expanded", String(open));
    });
    box.appendChild(body);
    box.appendChild(toggle);
    return box;
  }

  function renderCell(name, cell) {
    var box = make("div", "output");
    box.setAttribute("data-variant", name);
    var head = make("div", "vhead");
    head.appendChild(make("span", "vname", name));
    var pills = make("span", "pills");
    if (cell.cached) {
      var cached = make("span", "pill mid cached", "cached");
      cached.title = "Served from the response cache: its latency and cost are the original call's.";
      pills.appendChild(cached);
    }
    pills.appendChild(scorePill(cell));
    head.appendChild(pills);
    box.appendChild(head);
    if (cell.text !== null && cell.text !== undefined) box.appendChild(make("div", "text resp", cell.text));
    if (cell.error) box.appendChild(make("div", "text error", cell.error));
    if (cell.status === "missing") box.appendChild(make("div", "reason", "no result recorded"));
    if (cell.reason && cell.reason !== cell.error) box.appendChild(make("div", "reason", cell.reason));
    (cell.others || []).forEach(function (pair) {
      var value = typeof pair[1] === "number" ? pair[1].toFixed(3) : pair[1];
      box.appendChild(make("div", "reason", pair[0] + ": " + value));
    });
    if (cell.trace) {
      cell.trace.warnings.forEach(function (w) { box.appendChild(make("div", "reason warn-line", "warning: " + w)); });
      box.appendChild(renderTrace(cell.trace));
    }
    var why = cell.rationale || cell.raw;
    if (why) {
      var details = make("details", "rationale");
      details.appendChild(make("summary", null, cell.rationale ? "Judge rationale" : "Judge reply"));
      details.appendChild(make("div", "text", why));
      box.appendChild(details);
    }
    return box;
  }

  function plural(n, noun) { return n + " " + noun + (n === 1 ? "" : "s"); }

  function renderTrace(trace) {
    var details = make("details", "trace");
    var parts = trace.steps.length ? [plural(trace.steps.length, "step")] : [];
    parts.push(plural(trace.calls.length, "model call"));
    details.appendChild(make("summary", null, "Pipeline trace: " + parts.join(", ")));
    if (trace.steps.length) details.appendChild(traceNodes("Steps (from the pipeline)", trace.steps));
    if (trace.calls.length) details.appendChild(traceNodes("Model calls (metered by Assay)", trace.calls));
    return details;
  }

  function traceNodes(title, nodes) {
    var box = make("div", "trace-part");
    box.appendChild(make("div", "field-label", title));
    var list = make("ol", "trace-nodes");
    nodes.forEach(function (node) {
      var item = make("li", node.optimized ? "node optimized" : "node");
      var head = make("div", "node-head");
      head.appendChild(make("span", "pill mid", node.kind));
      head.appendChild(make("span", "node-name", node.name + (node.optimized ? " (prompt under test)" : "")));
      if (node.meta) head.appendChild(make("span", "muted", node.meta));
      item.appendChild(head);
      if (node.input) item.appendChild(field("In", node.input, "node-io"));
      if (node.output) item.appendChild(field("Out", node.output, "node-io"));
      list.appendChild(item);
    });
    box.appendChild(list);
    return box;
  }

  function renderRow(row, data) {
    var card = make("article", "sample");
    card.setAttribute("data-sample", row.id);
    var head = make("div", "sample-head");
    head.appendChild(make("span", "sid", row.id));
    if (row.repeat) head.appendChild(make("span", "pill", "repeat " + row.repeat));
    if (row.disagree) head.appendChild(make("span", "pill warn", (data.differs || "variants") + " disagree"));
    if (row.spread > 0) head.appendChild(make("span", "muted", "spread " + row.spread.toFixed(2)));
    card.appendChild(head);
    var io = make("div", "sample-io");
    io.appendChild(field("Input", row.input));
    var reference = row.reference === null ? (data.references ? "(none)" : "(not available)") : row.reference;
    io.appendChild(field("Reference", reference));
    card.appendChild(io);
    var outputs = make("div", "outputs");
    row.cells.forEach(function (cell, i) { outputs.appendChild(renderCell(data.variants[i], cell)); });
    card.appendChild(outputs);
    return card;
  }

  function haystack(row) {
    var parts = [row.id, row.input, row.reference];
    row.cells.forEach(function (c) { parts.push(c.text, c.error, c.reason, c.rationale); });
    return parts.filter(Boolean).join("\n").toLowerCase();
  }

  function select(rows, filter, query) {
    var out = rows.filter(function (row) {
      if (filter === "failures" && !row.failure) return false;
      if (filter === "disagree" && !row.disagree) return false;
      if (filter === "changes" && !(row.spread > 0)) return false;
      return !query || row.text.indexOf(query) !== -1;
    });
    if (filter === "changes") out.sort(function (a, b) { return b.spread - a.spread; });
    return out;
  }

  function setup(root) {
    var source = document.getElementById(root.getAttribute("data-source"));
    if (!source) return;
    var data = JSON.parse(source.textContent);
    data.rows.forEach(function (row) { row.text = haystack(row); });
    var list = root.querySelector(".sample-list");
    var count = root.querySelector(".count");
    var search = root.querySelector("input[type=search]");
    var buttons = root.querySelectorAll("button[data-filter]");
    var state = { filter: "all", query: "", shown: PAGE };

    function update() {
      var rows = select(data.rows, state.filter, state.query);
      list.replaceChildren();
      rows.slice(0, state.shown).forEach(function (row) { list.appendChild(renderRow(row, data)); });
      if (!rows.length) list.appendChild(make("div", "empty", "No sample matches."));
      if (rows.length > state.shown) {
        var more = make("button", "button more", "Show " + Math.min(PAGE, rows.length - state.shown) + " more");
        more.type = "button";
        more.addEventListener("click", function () { state.shown += PAGE; update(); });
        list.appendChild(more);
      }
      count.textContent = rows.length + " of " + data.rows.length + " samples";
      root.setAttribute("data-count", String(rows.length));
    }

    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        state.filter = button.getAttribute("data-filter");
        state.shown = PAGE;
        buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
        update();
      });
    });
    search.addEventListener("input", function () {
      state.query = search.value.trim().toLowerCase();
      state.shown = PAGE;
      update();
    });
    update();
  }

  document.querySelectorAll(".explorer[data-source]").forEach(setup);
})();
