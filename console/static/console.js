// newswatch console: the stories page listens for changed stories (server-sent events) and puts
// each one at the top of the table. Rows arrive rendered (and escaped) by the server's template;
// they are parsed into a <template>, whose content never runs scripts.
"use strict";
(function () {
  const status = document.getElementById("live-status");
  const body = document.getElementById("stories");
  if (!status || !body || !window.EventSource) return;
  const params = new URLSearchParams(status.dataset.query || "");
  params.delete("limit");
  params.set("after", status.dataset.seq || "0");
  const source = new EventSource("/api/stories/stream?" + params.toString());
  source.onopen = function () { status.textContent = "live: connected"; status.classList.add("on"); };
  source.onerror = function () { status.textContent = "live: reconnecting…"; status.classList.remove("on"); };
  source.addEventListener("story", function (event) {
    const data = JSON.parse(event.data);
    const holder = document.createElement("template");
    holder.innerHTML = data.html.trim();
    const row = holder.content.firstElementChild;
    if (!row) return;
    const old = document.getElementById(row.id);
    if (old) old.remove();
    row.classList.add("fresh");
    body.insertBefore(row, body.firstChild);
    const empty = document.getElementById("no-stories");
    if (empty) empty.remove();
    status.dataset.seq = String(data.story.seq);
  });
})();
