// The page's behaviour, hand-written, no build step: operate buttons that call the JSON API with the session's
// CSRF token, live refresh of an account's parts when one of its runs commits (server-sent events, or polling
// every 2 s on the embedded default), and ages that keep counting.
"use strict";

(() => {
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  const csrf = meta("recon-csrf");
  const mode = meta("recon-live");
  const POLL_MS = 2000;
  // What tests and curious people can read: how many events arrived and when a part was last refreshed.
  const page = (window.reconPage = { mode, events: 0, refreshed: 0, lastEventAt: null, lastRefreshAt: null });

  function say(text, isError) {
    const box = document.getElementById("message");
    if (!box) return;
    box.textContent = text;
    box.classList.toggle("error", Boolean(isError));
    box.hidden = false;
    clearTimeout(say.timer);
    say.timer = setTimeout(() => { box.hidden = true; }, isError ? 10000 : 4000);
  }

  function liveLabel(text, down) {
    const label = document.getElementById("live-state");
    if (!label) return;
    label.textContent = text;
    label.classList.toggle("down", Boolean(down));
  }

  // Swap in fresh copies of every part of the page that shows the account "bot/account".
  async function refresh(name) {
    const parts = Array.from(document.querySelectorAll("[data-live]")).filter((el) => el.dataset.live === name);
    for (const part of parts) {
      const answer = await fetch(part.dataset.src, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (answer.redirected && new URL(answer.url).pathname === "/login") {
        window.location.assign("/login");
        return;
      }
      if (!answer.ok) continue;
      const holder = document.createElement("template");
      holder.innerHTML = (await answer.text()).trim();
      const fresh = holder.content.firstElementChild;
      if (!fresh || !part.isConnected) continue;
      fresh.dataset.refreshedAt = String(Date.now());
      part.replaceWith(fresh);
      ageAll();
    }
    page.refreshed += 1;
    page.lastRefreshAt = Date.now();
  }

  function listen() {
    const source = new EventSource("/events");
    source.addEventListener("open", () => liveLabel("live", false));
    source.addEventListener("error", () => liveLabel("live: reconnecting…", true));
    source.addEventListener("run", (event) => {
      const run = JSON.parse(event.data);
      page.events += 1;
      page.lastEventAt = Date.now();
      refresh(`${run.bot}/${run.account}`);
    });
  }

  function shownRun(name) {
    const part = Array.from(document.querySelectorAll("[data-live]")).find((el) => el.dataset.live === name);
    return part ? part.dataset.run : undefined;
  }

  // The embedded default has no event stream: ask for the fleet every 2 s, refresh what changed.
  function poll() {
    const seen = new Map();
    const tick = async () => {
      try {
        const answer = await fetch("/api/v1/fleet", { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
        for (const row of (await answer.json()).accounts) {
          const name = `${row.bot}/${row.account}`;
          const runId = row.last_run ? String(row.last_run.run_id) : "";
          const signature = JSON.stringify([runId, row.last_run && row.last_run.status, row.halted, row.open_breaks]);
          const shown = shownRun(name);
          if ((seen.has(name) && seen.get(name) !== signature) || (shown !== undefined && shown !== runId)) {
            refresh(name);
          }
          seen.set(name, signature);
        }
        liveLabel("updates every 2 s", false);
      } catch (problem) {
        liveLabel(`updates paused (${problem.message})`, true);
      } finally {
        setTimeout(tick, POLL_MS);
      }
    };
    tick();
  }

  async function post(path, body) {
    const headers = { Accept: "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const answer = await fetch(path, {
      method: "POST", credentials: "same-origin", headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await answer.json(); } catch (_) { data = null; }
    if (!answer.ok) throw new Error((data && data.error && data.error.message) || `HTTP ${answer.status}`);
    return data;
  }

  const accountPath = (el) => `/api/v1/accounts/${encodeURIComponent(el.dataset.bot)}/${encodeURIComponent(el.dataset.account)}`;
  const nameOf = (el) => `${el.dataset.bot}/${el.dataset.account}`;

  async function operate(el, path, body, done) {
    const buttons = el.tagName === "FORM" ? el.querySelectorAll("button") : [el];
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const data = await post(path, body);
      say(done(data), false);
      await refresh(nameOf(el));
    } catch (problem) {
      say(`${nameOf(el)}: ${problem.message}`, true);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  document.addEventListener("click", (event) => {
    const el = event.target.closest("button[data-action]");
    if (!el) return;
    if (el.dataset.action === "trigger") {
      operate(el, `${accountPath(el)}/reconcile`, { reason: "manual" }, (data) =>
        data && data.run_id ? `${nameOf(el)}: run #${data.run_id} done`
          : data && data.joined ? `${nameOf(el)}: a run already queued will serve this` : `${nameOf(el)}: run queued`);
    } else if (el.dataset.action === "resume") {
      operate(el, `${accountPath(el)}/resume`, undefined, () => `${nameOf(el)} resumed`);
    }
  });

  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-action='halt']");
    if (!form) return;
    event.preventDefault();
    const reason = form.elements.reason.value.trim();
    if (!reason) { say("Say why you halt the account.", true); return; }
    operate(form, `${accountPath(form)}/halt`, { reason }, () => `${nameOf(form)} halted`);
  });

  // Ages ("5 min ago") keep counting between refreshes, from the server's clock.
  const skew = Date.parse(meta("recon-now")) - Date.now() || 0;
  function ageText(seconds) {
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60]]) {
      if (seconds >= size) return `${Math.floor(seconds / size)} ${unit}`;
    }
    return `${Math.max(Math.floor(seconds), 0)} s`;
  }
  function ageAll() {
    const now = Date.now() + skew;
    document.querySelectorAll("time[data-age]").forEach((el) => {
      const at = Date.parse(el.getAttribute("datetime"));
      if (!Number.isNaN(at)) el.textContent = `${ageText((now - at) / 1000)} ago`;
    });
  }
  setInterval(ageAll, 5000);

  if (document.querySelector("[data-live]")) {
    if (mode === "events") listen();
    else if (mode === "poll") poll();
  }
})();
