// The live parts: new enquiries prepended to the feed, the counters moved. Everything
// else works without this file. Text is set with textContent only: values from peers are
// never parsed as HTML.
(function () {
  "use strict";
  var feed = document.getElementById("feed");
  if (!feed || !window.EventSource) { return; }
  var source = new EventSource("/events");
  function cell(row, text) { var td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; }
  function bump(name, by) {
    var el = document.querySelector('[data-counter="' + name + '"]');
    if (el && by) { el.textContent = String(parseInt(el.textContent, 10) + by); }
  }
  source.addEventListener("enquiry", function (ev) {
    var e = JSON.parse(ev.data);
    var row = document.createElement("tr");
    row.className = "fresh";
    row.setAttribute("data-enquiry", e.id);
    var when = cell(row, "");
    var link = document.createElement("a");
    link.href = "/enquiries/" + encodeURIComponent(e.id);
    link.textContent = new Date(e.at * 1000).toISOString().slice(0, 19).replace("T", " ");
    when.appendChild(link);
    cell(row, e.direction === "in" ? feed.getAttribute("data-in") : feed.getAttribute("data-out"));
    cell(row, e.peer);
    cell(row, e.categories.join(", "));
    var outcome = cell(row, "");
    var badge = document.createElement("span");
    badge.className = "status " + e.outcome;
    badge.textContent = e.statuses.join(", ") || e.decision;
    outcome.appendChild(badge);
    feed.insertBefore(row, feed.firstChild);
    while (feed.rows.length > 50) { feed.deleteRow(-1); }
    bump("checks", e.checks); bump("hits", e.hits); bump("denied", e.denied);
  });
})();
