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
document.addEventListener("htmx:sseBeforeMessage", (event) => {
  if (event.target.querySelector && event.target.querySelector(".htmx-request")) {
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
