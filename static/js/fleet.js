// Small enhancements; every page works without them.
// "/" focuses the search box, as in most list-heavy tools.
document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  const search = document.getElementById("search");
  if (event.key === "/" && !typing && search && !event.ctrlKey && !event.metaKey) {
    event.preventDefault();
    search.focus();
    search.select();
  }
});

// <time data-countdown datetime="..."> counts down to its moment ("in 2 min 5 s").
function tick() {
  for (const element of document.querySelectorAll("time[data-countdown]")) {
    const seconds = Math.round((Date.parse(element.dateTime) - Date.now()) / 1000);
    if (Number.isNaN(seconds)) continue;
    if (seconds <= 0) { element.textContent = "due now"; continue; }
    const minutes = Math.floor(seconds / 60);
    element.textContent = "in " + (minutes ? `${minutes} min ` : "") + `${seconds % 60} s`;
  }
}
tick();
setInterval(tick, 1000);

// While a row's or section's own Refresh is in flight, a live update does not replace it: the
// answer carries the same fresh fragment, and replacing the form would orphan that answer.
// Live fragments arrive as out-of-band swaps inside one `fragments` event; only those are held
// back (the Refresh answer's own out-of-band swaps happen while its request is still marked).
let liveSwap = false;
document.addEventListener("htmx:sseBeforeMessage", (event) => {
  if (event.target.querySelector && event.target.querySelector(".htmx-request")) {
    event.preventDefault();
    return;
  }
  liveSwap = true;  // the extension swaps right after this event, in the same task
  queueMicrotask(() => { liveSwap = false; });
});
document.addEventListener("htmx:oobBeforeSwap", (event) => {
  const target = event.detail.target;
  if (liveSwap && target.querySelector && target.querySelector(".htmx-request")) {
    event.preventDefault();
  }
});

// The server sends `event: reload` when it can no longer keep this page current (the page fell
// behind, or a fragment could not be rendered) or its user may no longer watch: the page then
// reloads, whole and fresh, or lands on the login page. Each stream is told once.
const reloadingSources = new WeakSet();
document.addEventListener("htmx:sseOpen", (event) => {
  const source = event.detail.source;
  if (!reloadingSources.has(source)) {
    reloadingSources.add(source);
    source.addEventListener("reload", () => window.location.reload());
  }
});

// <time data-elapsed datetime="..."> counts up from its moment ("12 s", "2 min 5 s"): how long a
// pending action ("stopping…") has been in flight.
function elapsed() {
  for (const element of document.querySelectorAll("time[data-elapsed]")) {
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(element.dateTime)) / 1000));
    if (Number.isNaN(seconds)) continue;
    const minutes = Math.floor(seconds / 60);
    element.textContent = (minutes ? `${minutes} min ` : "") + `${seconds % 60} s`;
  }
}
elapsed();
setInterval(elapsed, 1000);
document.addEventListener("htmx:afterSettle", elapsed);
document.addEventListener("htmx:sseMessage", elapsed);

// Bulk selection survives live row updates: the selected worker ids are kept here and put back
// on the checkboxes after every swap. "Select all" selects the rows on screen.
const selected = new Set();
function restoreSelection() {
  for (const box of document.querySelectorAll('input[name="pks"][form="bulk-form"]')) {
    box.checked = selected.has(box.value);
  }
}
document.addEventListener("change", (event) => {
  const box = event.target;
  if (box.id === "select-all") {
    for (const row of document.querySelectorAll('input[name="pks"][form="bulk-form"]')) {
      row.checked = box.checked;
      if (box.checked) selected.add(row.value); else selected.delete(row.value);
    }
  } else if (box.name === "pks" && box.getAttribute("form") === "bulk-form") {
    if (box.checked) selected.add(box.value); else selected.delete(box.value);
  }
});
document.addEventListener("htmx:sseMessage", restoreSelection);
document.addEventListener("htmx:afterSettle", restoreSelection);

// <time data-ago datetime="..."> keeps its relative text true while the page stays open: the
// server wrote "5 min ago" when it rendered the page (fleet_format.short_age, the same rule);
// this rewrites it every 15 s.
function shortAge(seconds) {
  const minutes = Math.floor(Math.max(seconds, 0) / 60);
  const hours = Math.floor(minutes / 60);
  const days = Math.floor(minutes / 1440);
  if (minutes < 1) return "<1 min";
  if (hours < 1) return `${minutes} min`;
  if (days < 1) return `${hours} h` + (minutes % 60 ? ` ${minutes % 60} min` : "");
  return `${days} d` + (hours % 24 ? ` ${hours % 24} h` : "");
}
function ago() {
  for (const element of document.querySelectorAll("time[data-ago]")) {
    const seconds = Math.round((Date.now() - Date.parse(element.dateTime)) / 1000);
    if (Number.isNaN(seconds)) continue;
    element.textContent = `${shortAge(seconds)} ago`;
  }
}
ago();
setInterval(ago, 15000);
document.addEventListener("htmx:afterSettle", ago);
document.addEventListener("htmx:sseMessage", ago);

// The page title counts the workers in trouble; the stat cards (live) carry the current title.
function retitle() {
  const stats = document.getElementById("fleet-stats");
  if (stats && stats.dataset.title) document.title = stats.dataset.title;
}
document.addEventListener("htmx:afterSettle", retitle);
document.addEventListener("htmx:sseMessage", retitle);
