// The console's one script: deadlines count down, and the inbox fetches its rows every few seconds
// so that new incident candidates appear without a reload. Pages work without it.
"use strict";

const REFRESH_MS = 5000;

function left(due, now) {
  const seconds = Math.trunc((due - now) / 1000);
  const abs = Math.abs(seconds);
  const days = Math.floor(abs / 86400);
  const hours = Math.floor((abs % 86400) / 3600);
  const minutes = Math.floor((abs % 3600) / 60);
  const span = days ? `${days} d ${hours} h` : `${hours} h ${minutes} min`;
  return seconds >= 0 ? `${span} left` : `${span} overdue`;
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("time[data-due]")) {
    el.textContent = left(Date.parse(el.getAttribute("datetime")), now);
  }
}

async function refreshInbox(body) {
  try {
    const answer = await fetch(body.dataset.refresh, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (answer.redirected) {  // the session ended: the page itself goes to the sign-in form
      window.location.reload();
      return;
    }
    if (!answer.ok) return;
    const before = new Set([...body.querySelectorAll("tr[data-incident]")].map((r) => r.dataset.incident));
    body.innerHTML = await answer.text();
    const added = [...body.querySelectorAll("tr[data-incident]")].filter((r) => !before.has(r.dataset.incident));
    if (added.length) {
      document.getElementById("inbox-news").textContent =
        `${added.length} new incident${added.length > 1 ? "s" : ""} arrived.`;
    }
    tick();
  } catch (_) {
    // The API may be restarting: the next refresh tries again.
  }
}

document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 1000);
  const body = document.getElementById("inbox-rows");
  if (body) setInterval(() => refreshInbox(body), REFRESH_MS);
});
