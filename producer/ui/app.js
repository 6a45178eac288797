// runfleet console: a small single-page app over the API on this origin. Pages are hash
// routes; every request carries the token the user entered (kept in localStorage). Text
// from the API is only ever set as textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "runfleet.token";
const THEME_KEY = "runfleet.theme";
const ROLES = ["viewer", "operator", "admin"];
const FINAL = ["succeeded", "failed", "timed_out", "cancelled", "dead"];
const STATUSES = ["queued", "running", "retrying", ...FINAL];

const app = {
  token: localStorage.getItem(TOKEN_KEY) || "",
  me: null, // {name, role}
  cleanups: [], // stop timers and streams of the page being left
};

// ---------- DOM helpers ----------

/** Builds an element: h("a", {href: "#"}, "text", child…). Strings become text nodes. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") el.style.cssText = v; // CSSOM: allowed by the page's CSP
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function badge(status) {
  return h("span", { class: `badge s-${status}`, "data-status": status }, status.replace("_", " "));
}

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function ago(iso) {
  if (!iso) return "—";
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  const abs = Math.abs(s);
  const [n, unit] =
    abs < 60 ? [abs, "s"] : abs < 3600 ? [abs / 60, "min"] : abs < 86400 ? [abs / 3600, "h"] : [abs / 86400, "d"];
  const txt = `${Math.round(n)} ${unit}`;
  return s >= 0 ? `${txt} ago` : `in ${txt}`;
}

function when(iso) {
  return h("span", { title: iso ? fmtTime(iso) : "" }, ago(iso));
}

function duration(run) {
  if (!run.started_at) return "—";
  const end = run.finished_at ? new Date(run.finished_at) : new Date();
  const s = (end - new Date(run.started_at)) / 1000;
  return s < 10 ? `${s.toFixed(2)} s` : s < 120 ? `${s.toFixed(1)} s` : `${Math.round(s / 60)} min`;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(1)} ${units[i]}`;
}

function json(v) {
  return JSON.stringify(v, null, 2);
}

function can(role) {
  return app.me && ROLES.indexOf(app.me.role) >= ROLES.indexOf(role);
}

function banner(message, ok) {
  const el = document.getElementById("banner");
  el.textContent = message;
  el.className = ok ? "ok" : "";
  el.hidden = !message;
  if (ok) setTimeout(() => { if (el.textContent === message) el.hidden = true; }, 4000);
}

function every(ms, fn) {
  const t = setInterval(fn, ms);
  app.cleanups.push(() => clearInterval(t));
}

// ---------- API ----------

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code;
    this.field = e.field;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${app.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    if (res.status === 401 && path !== "/whoami") {
      logout("Your token was refused (unknown or revoked): enter a valid one.");
    }
    throw new ApiError(res.status, data);
  }
  return data;
}

const get = (path) => api("GET", path);
const post = (path, body) => api("POST", path, body === undefined ? {} : body);

/** Follows GET /runs/{id}/events (server-sent events over fetch, so the token goes in a
 *  header); calls onEvent(name, data) per event until the stream ends or is aborted. */
async function followRun(id, onEvent, signal) {
  const res = await fetch(`/runs/${id}/events`, {
    headers: { Authorization: `Bearer ${app.token}`, Accept: "text/event-stream" },
    signal,
  });
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

// ---------- shell: login, nav, theme ----------

function logout(message) {
  app.token = "";
  app.me = null;
  localStorage.removeItem(TOKEN_KEY);
  location.hash = "#/login";
  if (message) banner(message);
}

async function login(token) {
  app.token = token.trim();
  try {
    app.me = await get("/whoami");
  } catch (e) {
    app.token = "";
    app.me = null;
    throw e;
  }
  localStorage.setItem(TOKEN_KEY, app.token);
}

function showShell() {
  const signed = !!app.me;
  document.getElementById("nav").hidden = !signed;
  document.getElementById("logout").hidden = !signed;
  document.getElementById("whoami").textContent = signed ? `${app.me.name} · ${app.me.role}` : "";
}

function applyTheme() {
  const theme = localStorage.getItem(THEME_KEY) || "auto";
  if (theme === "auto") document.documentElement.removeAttribute("data-theme");
  else document.documentElement.setAttribute("data-theme", theme);
  const btn = document.getElementById("theme");
  btn.textContent = theme === "dark" ? "☾" : theme === "light" ? "☀" : "◐";
  btn.title = `Theme: ${theme === "auto" ? "follows the system" : theme} (click to change)`;
}

document.getElementById("theme").addEventListener("click", () => {
  const order = ["auto", "light", "dark"];
  const now = localStorage.getItem(THEME_KEY) || "auto";
  localStorage.setItem(THEME_KEY, order[(order.indexOf(now) + 1) % order.length]);
  applyTheme();
});
document.getElementById("logout").addEventListener("click", () => logout());

function pageLogin() {
  const input = h("input", { type: "password", id: "token", placeholder: "rfb_… or rft_…", autocomplete: "off" });
  const form = h("form", { class: "panel login", id: "login-form" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Enter an API token. An admin makes one with ",
      h("code", {}, "runfleet tokens create --name NAME --role viewer"), "."),
    h("label", { class: "block", for: "token" }, "Token"),
    input,
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await login(input.value);
      banner("");
      location.hash = "#/runs";
    } catch (e) {
      banner(e.status === 401 ? "That token is unknown or revoked." : `Cannot sign in: ${e.message}`);
    }
  });
  setTimeout(() => input.focus(), 0);
  return form;
}

// ---------- runs ----------

function runsTable(runs) {
  return h("div", { class: "table-wrap" }, h("table", { id: "runs-table" },
    h("thead", {}, h("tr", {},
      h("th", {}, "Status"), h("th", {}, "Script"), h("th", { class: "wide" }, "Task"),
      h("th", { class: "wide" }, "Queue"), h("th", {}, "Attempt"), h("th", {}, "Submitted"),
      h("th", { class: "wide" }, "Duration"), h("th", { class: "wide" }, "Id"))),
    h("tbody", {}, runs.length === 0
      ? h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No runs."))
      : runs.map((r) => h("tr", { class: "link", dataset: { id: r.id }, onclick: () => { location.hash = `#/runs/${r.id}`; } },
        h("td", {}, badge(r.status)),
        h("td", {}, h("a", { href: `#/runs/${r.id}` }, `${r.script} v${r.script_version}`)),
        h("td", { class: "wide" }, r.task || ""),
        h("td", { class: "wide" }, r.queue),
        h("td", {}, `${r.attempt}/${r.max_attempts}`),
        h("td", {}, when(r.submitted_at)),
        h("td", { class: "wide" }, duration(r)),
        h("td", { class: "wide mono" }, r.id.slice(0, 8)))))));
}

function pageRuns(params) {
  const status = h("select", { id: "filter-status" }, h("option", { value: "" }, "any status"),
    STATUSES.map((s) => h("option", { value: s, selected: params.get("status") === s }, s)));
  const script = h("input", { id: "filter-script", placeholder: "script name", value: params.get("script") || "" });
  const auto = h("input", { type: "checkbox", id: "auto-refresh", checked: true });
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const more = h("button", { class: "ghost", hidden: true }, "Load more");
  let cursor = null;
  let shown = [];

  const query = (c) => {
    const q = new URLSearchParams({ limit: "50" });
    if (status.value) q.set("status", status.value);
    if (script.value.trim()) q.set("script", script.value.trim());
    if (c) q.set("cursor", c);
    return `/runs?${q}`;
  };
  const load = async () => {
    try {
      const page = await get(query());
      shown = page.runs;
      cursor = page.next_cursor;
      list.replaceChildren(runsTable(shown));
      more.hidden = !cursor;
    } catch (e) { banner(`Cannot list runs: ${e.message}`); }
  };
  more.addEventListener("click", async () => {
    try {
      const page = await get(query(cursor));
      shown = shown.concat(page.runs);
      cursor = page.next_cursor;
      list.replaceChildren(runsTable(shown));
      more.hidden = !cursor;
      auto.checked = false; // a refresh would drop the extra pages
    } catch (e) { banner(`Cannot list runs: ${e.message}`); }
  });
  const apply = () => {
    const q = new URLSearchParams();
    if (status.value) q.set("status", status.value);
    if (script.value.trim()) q.set("script", script.value.trim());
    history.replaceState(null, "", `#/runs${q.toString() ? `?${q}` : ""}`);
    load();
  };
  status.addEventListener("change", apply);
  script.addEventListener("change", apply);
  every(3000, () => { if (auto.checked && !document.hidden) load(); });
  load();
  return h("div", {},
    h("h1", {}, "Runs"),
    h("div", { class: "row panel" },
      h("label", {}, "Status ", status),
      h("label", {}, "Script ", script),
      h("span", { class: "grow" }),
      h("label", {}, auto, "auto-refresh")),
    list, h("p", {}, more));
}

function runTimeline(run, attempts) {
  const items = [h("li", { class: "s-queued" }, "Submitted ", h("span", { class: "muted" }, `(${run.trigger})`),
    h("div", { class: "when" }, fmtTime(run.submitted_at)))];
  for (const a of attempts) {
    items.push(h("li", { class: "s-running" }, `Attempt ${a.attempt} started`,
      a.worker ? h("span", { class: "muted" }, ` on ${a.worker}`) : "",
      h("div", { class: "when" }, fmtTime(a.started_at))));
    items.push(h("li", { class: `s-${a.status}` }, `Attempt ${a.attempt} `, badge(a.status),
      a.exit_code !== null && a.exit_code !== undefined ? h("span", { class: "muted" }, ` exit ${a.exit_code}`) : "",
      a.error ? h("div", { class: "muted" }, a.error.message) : "",
      h("div", { class: "when" }, fmtTime(a.finished_at))));
  }
  const done = attempts.some((a) => a.attempt === run.attempt);
  if (!done) {
    if (run.status === "running") {
      items.push(h("li", { class: "s-running" }, `Attempt ${run.attempt} running`,
        run.worker ? h("span", { class: "muted" }, ` on ${run.worker}`) : "",
        h("div", { class: "when" }, `since ${fmtTime(run.started_at)}`)));
    } else if (run.status === "queued") {
      items.push(h("li", { class: "s-queued" }, `Attempt ${run.attempt} queued on ${run.queue}`));
    } else if (run.status === "retrying") {
      items.push(h("li", { class: "s-retrying" }, `Retry (attempt ${run.attempt + 1}) due`,
        h("div", { class: "when" }, fmtTime(run.retry_at))));
    } else if (FINAL.includes(run.status)) {
      items.push(h("li", { class: `s-${run.status}` }, "Ended ", badge(run.status),
        run.error ? h("div", { class: "muted" }, run.error.message) : "",
        h("div", { class: "when" }, fmtTime(run.finished_at))));
    }
  }
  return h("ol", { class: "timeline", id: "timeline" }, items);
}

function pageRun(id) {
  const root = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const aborter = new AbortController();
  app.cleanups.push(() => aborter.abort());
  const logOut = h("pre", { class: "log", id: "log" });
  const logNote = h("span", { class: "muted", id: "log-note" });
  const attemptSel = h("select", { id: "log-attempt" });
  let run = null;
  let attempts = [];
  let following = false;
  let picked = false; // the user chose an attempt: stay on it, else show the latest

  const appendLog = (stream, text) => {
    const atEnd = logOut.scrollTop + logOut.clientHeight >= logOut.scrollHeight - 4;
    logOut.append(stream === "stderr" ? h("span", { class: "stderr" }, text) : document.createTextNode(text));
    if (atEnd) logOut.scrollTop = logOut.scrollHeight;
  };
  const showStored = async (attempt) => {
    try {
      const logs = await get(`/runs/${id}/logs?attempt=${attempt}`);
      logOut.replaceChildren();
      if (logs.stdout) appendLog("stdout", logs.stdout);
      if (logs.stderr) appendLog("stderr", logs.stderr);
      const cut = [logs.stdout_truncated && "stdout", logs.stderr_truncated && "stderr"].filter(Boolean);
      logNote.textContent = !logs.stdout && !logs.stderr ? "no output"
        : cut.length ? `the start of ${cut.join(" and ")} was cut (cap)` : "";
    } catch (e) { banner(`Cannot read logs: ${e.message}`); }
  };
  const render = () => {
    const actions = [];
    if (can("operator") && ["queued", "running", "retrying"].includes(run.status)) {
      actions.push(h("button", { class: "danger", id: "cancel", onclick: async () => {
        try { await post(`/runs/${id}/cancel`); banner("Cancel requested.", true); refresh(); }
        catch (e) { banner(`Cannot cancel: ${e.message}`); }
      } }, "Cancel"));
    }
    if (can("operator") && FINAL.includes(run.status)) {
      actions.push(h("button", { id: "retry", onclick: async () => {
        try { await post(`/runs/${id}/retry`); banner("Queued again as a new attempt.", true); refresh(); startFollow(); }
        catch (e) { banner(`Cannot retry: ${e.message}`); }
      } }, "Retry"));
    }
    const kv = [
      ["Run", h("span", { class: "mono" }, run.id)],
      ["Script", h("a", { href: `#/scripts/${encodeURIComponent(run.script)}` }, `${run.script} v${run.script_version}`)],
      run.task && ["Task", h("a", { href: `#/tasks/${encodeURIComponent(run.task)}` }, run.task)],
      run.schedule_id && ["Schedule", `${run.schedule_id} (for ${fmtTime(run.scheduled_for)})`],
      ["Queue", run.queue],
      ["Attempt", `${run.attempt} of ${run.max_attempts}${run.reclaims ? `, ${run.reclaims} reclaimed` : ""}`],
      ["Worker", run.worker || "—"],
      ["Exit code", run.exit_code ?? "—"],
      ["Duration", duration(run)],
      ["Timeout", `${run.timeout_seconds} s`],
      run.venv_signature && ["Venv", h("span", { class: "mono" }, run.venv_signature.slice(0, 16))],
      run.trace_id && ["Trace", h("span", { class: "mono" }, run.trace_id)],
    ].filter(Boolean);
    const prev = attemptSel.value;
    attemptSel.replaceChildren(...Array.from({ length: run.attempt }, (_, i) => i + 1).reverse()
      .map((a) => h("option", { value: a }, `attempt ${a}`)));
    attemptSel.value = picked && prev && Number(prev) <= run.attempt ? prev : run.attempt;
    root.replaceChildren(
      h("h1", {}, `${run.script}`, badge(run.status), h("span", { class: "grow" }), ...actions),
      run.error ? h("div", { class: "panel", id: "run-error" }, h("strong", {}, run.error.code), ": ", run.error.message) : "",
      h("div", { class: "grid2" },
        h("div", { class: "panel" }, h("h2", {}, "Details"),
          h("dl", { class: "kv" }, kv.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
        h("div", { class: "panel" }, h("h2", {}, "Timeline"), runTimeline(run, attempts))),
      h("div", { class: "grid2" },
        h("div", { class: "panel" }, h("h2", {}, "Parameters"), h("pre", { id: "parameters" }, json(run.parameters))),
        h("div", { class: "panel" }, h("h2", {}, "Result"),
          h("pre", { id: "result" }, run.result === null || run.result === undefined ? "—" : json(run.result)))),
      h("div", { class: "panel" },
        h("div", { class: "row" }, h("h2", { class: "grow" }, "Logs"), logNote, attemptSel),
        logOut));
  };
  const refresh = async () => {
    try {
      [run, attempts] = await Promise.all([get(`/runs/${id}`), get(`/runs/${id}/attempts`)]);
      render();
    } catch (e) {
      root.replaceChildren(h("h1", {}, "Run"), h("p", {}, e.status === 404 || e.status === 400 ? `No run ${id}.` : e.message));
    }
  };
  const startFollow = async () => {
    if (following) return;
    following = true;
    let shownAttempt = null;
    try {
      await followRun(id, (name, data) => {
        if (name === "run" || name === "end") {
          const changed = !run || run.status !== data.status || run.attempt !== data.attempt;
          if (run && run.attempt !== data.attempt && !picked) {
            // A new attempt (a retry): its own output from an empty view.
            shownAttempt = data.attempt;
            logOut.replaceChildren();
          }
          run = data;
          if (changed) refresh();
          if (name === "end") logNote.textContent = "";
        } else if (name === "log") {
          if (picked && String(data.attempt) !== attemptSel.value) return;
          if (shownAttempt !== data.attempt) {
            shownAttempt = data.attempt;
            logOut.replaceChildren();
          }
          logNote.textContent = run && run.status === "running" ? "following…" : "";
          appendLog(data.stream, data.text);
        }
      }, aborter.signal);
    } catch (e) {
      if (e.name !== "AbortError") banner(`Live updates stopped: ${e.message}`);
    } finally {
      following = false;
    }
    if (!aborter.signal.aborted && run && FINAL.includes(run.status)) {
      await refresh();
      showStored(run.attempt);
    }
  };
  attemptSel.addEventListener("change", () => {
    picked = Number(attemptSel.value) !== run.attempt;
    showStored(attemptSel.value);
  });
  refresh().then(() => {
    if (!run) return;
    if (FINAL.includes(run.status)) showStored(run.attempt);
    else startFollow();
  });
  return root;
}

// ---------- scripts ----------

function pageScripts() {
  const root = h("div", {}, h("h1", {}, "Scripts"), h("p", { class: "muted" }, "Loading…"));
  get("/scripts").then((scripts) => {
    root.replaceChildren(h("h1", {}, "Scripts"), h("div", { class: "table-wrap" }, h("table", { id: "scripts-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Latest"), h("th", {}, "Language"), h("th", {}, "Updated"))),
      h("tbody", {}, scripts.length === 0
        ? h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No scripts yet: runfleet scripts push FILE"))
        : scripts.map((s) => h("tr", { class: "link", onclick: () => { location.hash = `#/scripts/${encodeURIComponent(s.name)}`; } },
          h("td", {}, h("a", { href: `#/scripts/${encodeURIComponent(s.name)}` }, s.name)),
          h("td", {}, `v${s.latest_version}`), h("td", {}, s.language), h("td", {}, when(s.updated_at))))))));
  }).catch((e) => banner(`Cannot list scripts: ${e.message}`));
  return root;
}

/** Line diff: [{op: " " | "+" | "-", line}]. Common head and tail are trimmed, then the
 *  middle is aligned by longest common subsequence (fine for scripts; a middle over 4M
 *  line pairs is shown as all removed, then all added). */
function diffLines(a, b) {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  const out = a.slice(0, head).map((line) => ({ op: " ", line }));
  const n = x.length;
  const m = y.length;
  if (n * m > 4e6) {
    out.push(...x.map((line) => ({ op: "-", line })), ...y.map((line) => ({ op: "+", line })));
  } else {
    // lcs[i][j]: length of the LCS of x[i..] and y[j..], one row of m+1 per i.
    const lcs = new Uint32Array((n + 1) * (m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i * (m + 1) + j] = x[i] === y[j]
          ? lcs[(i + 1) * (m + 1) + j + 1] + 1
          : Math.max(lcs[(i + 1) * (m + 1) + j], lcs[i * (m + 1) + j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && x[i] === y[j]) { out.push({ op: " ", line: x[i] }); i++; j++; }
      else if (i < n && (j === m || lcs[(i + 1) * (m + 1) + j] >= lcs[i * (m + 1) + j + 1])) { out.push({ op: "-", line: x[i] }); i++; }
      else { out.push({ op: "+", line: y[j] }); j++; }
    }
  }
  out.push(...a.slice(a.length - tail).map((line) => ({ op: " ", line })));
  return out;
}

function diffView(ops) {
  const rows = [];
  const ctx = 3;
  const keep = ops.map((o, i) => o.op !== " " || ops.slice(Math.max(0, i - ctx), i + ctx + 1).some((p) => p.op !== " "));
  let skipped = 0;
  ops.forEach((o, i) => {
    if (!keep[i]) { skipped++; return; }
    if (skipped) { rows.push(h("div", { class: "gap" }, `… ${skipped} unchanged lines`)); skipped = 0; }
    rows.push(h("div", { class: o.op === "+" ? "add" : o.op === "-" ? "del" : "" }, `${o.op} ${o.line}`));
  });
  if (skipped) rows.push(h("div", { class: "gap" }, `… ${skipped} unchanged lines`));
  if (!ops.some((o) => o.op !== " ")) rows.push(h("div", { class: "gap" }, "The two versions have the same content."));
  return h("pre", { class: "diff", id: "diff" }, rows);
}

function pageScript(name) {
  const root = h("div", {}, h("h1", {}, name), h("p", { class: "muted" }, "Loading…"));
  const enc = encodeURIComponent(name);
  get(`/scripts/${enc}`).then((detail) => {
    const versions = detail.versions.map((v) => v.version).sort((x, y) => y - x);
    const opt = (sel) => versions.map((v) => h("option", { value: v, selected: v === sel }, `v${v}`));
    const showSel = h("select", { id: "show-version" }, opt(detail.latest.version));
    const fromSel = h("select", { id: "diff-from" }, opt(versions[1] ?? versions[0]));
    const toSel = h("select", { id: "diff-to" }, opt(versions[0]));
    const content = h("div", {});
    const diff = h("div", {});
    const cache = new Map([[detail.latest.version, detail.latest]]);
    const version = async (v) => {
      if (!cache.has(v)) cache.set(v, await get(`/scripts/${enc}/versions/${v}`));
      return cache.get(v);
    };
    const show = async () => {
      const v = await version(Number(showSel.value));
      content.replaceChildren(
        h("dl", { class: "kv" },
          h("dt", {}, "Language"), h("dd", {}, v.language),
          h("dt", {}, "Requirements"), h("dd", {}, v.requirements.length ? v.requirements.join(", ") : "none"),
          h("dt", {}, "Registered"), h("dd", {}, fmtTime(v.created_at))),
        h("h2", {}, "Content"), h("pre", { id: "script-content" }, v.content));
    };
    const compare = async () => {
      const [a, b] = await Promise.all([version(Number(fromSel.value)), version(Number(toSel.value))]);
      const reqA = a.requirements.map((r) => `# requirement: ${r}`);
      const reqB = b.requirements.map((r) => `# requirement: ${r}`);
      diff.replaceChildren(diffView(diffLines(reqA.concat(a.content.split("\n")), reqB.concat(b.content.split("\n")))));
    };
    showSel.addEventListener("change", () => show().catch((e) => banner(e.message)));
    fromSel.addEventListener("change", () => compare().catch((e) => banner(e.message)));
    toSel.addEventListener("change", () => compare().catch((e) => banner(e.message)));
    root.replaceChildren(
      h("h1", {}, name, h("span", { class: "muted" }, `${versions.length} version${versions.length === 1 ? "" : "s"}`)),
      h("div", { class: "panel" }, h("div", { class: "row" }, h("h2", { class: "grow" }, "Version"), showSel), content),
      h("div", { class: "panel" }, h("div", { class: "row" }, h("h2", { class: "grow" }, "Compare versions"),
        h("label", {}, "from ", fromSel), h("label", {}, "to ", toSel)), diff),
      h("div", { class: "panel" }, h("h2", {}, "Versions"), h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Version"), h("th", {}, "SHA-256"), h("th", {}, "Registered"))),
        h("tbody", {}, detail.versions.map((v) => h("tr", {},
          h("td", {}, `v${v.version}`), h("td", { class: "mono" }, v.sha256.slice(0, 16)), h("td", {}, fmtTime(v.created_at)))))))));
    show().then(compare).catch((e) => banner(e.message));
  }).catch((e) => {
    root.replaceChildren(h("h1", {}, name), h("p", {}, e.status === 404 ? "No such script." : e.message));
  });
  return root;
}

// ---------- tasks ----------

function pageTasks() {
  const root = h("div", {}, h("h1", {}, "Tasks"), h("p", { class: "muted" }, "Loading…"));
  get("/tasks").then((tasks) => {
    root.replaceChildren(h("h1", {}, "Tasks"), h("div", { class: "table-wrap" }, h("table", { id: "tasks-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Script"), h("th", { class: "wide" }, "Queue"),
        h("th", { class: "wide" }, "Timeout"), h("th", { class: "wide" }, "Attempts"), h("th", {}, "Updated"))),
      h("tbody", {}, tasks.length === 0
        ? h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No tasks yet: runfleet tasks create NAME --script FILE"))
        : tasks.map((t) => h("tr", { class: "link", onclick: () => { location.hash = `#/tasks/${encodeURIComponent(t.name)}`; } },
          h("td", {}, h("a", { href: `#/tasks/${encodeURIComponent(t.name)}` }, t.name)),
          h("td", {}, `${t.script}${t.version ? ` v${t.version}` : ""}`),
          h("td", { class: "wide" }, t.queue), h("td", { class: "wide" }, `${t.timeout_seconds} s`),
          h("td", { class: "wide" }, t.max_attempts), h("td", {}, when(t.updated_at))))))));
  }).catch((e) => banner(`Cannot list tasks: ${e.message}`));
  return root;
}

function pageTask(name) {
  const root = h("div", {}, h("h1", {}, name), h("p", { class: "muted" }, "Loading…"));
  const enc = encodeURIComponent(name);
  Promise.all([get(`/tasks/${enc}`), get(`/schedules?task=${enc}`)]).then(([task, schedules]) => {
    const params = h("textarea", { id: "run-parameters", spellcheck: "false" }, json(task.parameters || {}));
    const runForm = can("operator") ? h("form", { class: "panel", id: "run-form" },
      h("h2", {}, "Run now"),
      h("label", { class: "block", for: "run-parameters" }, "Parameters (JSON object; keys override the task's)"),
      params,
      h("p", {}, h("button", { type: "submit", id: "run-task" }, "Run"))) : "";
    if (runForm) {
      runForm.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        let parameters;
        try { parameters = JSON.parse(params.value || "{}"); } catch (e) { banner(`Parameters are not JSON: ${e.message}`); return; }
        try {
          const run = await post("/runs", { task: name, parameters });
          location.hash = `#/runs/${run.id}`;
        } catch (e) { banner(`Cannot run ${name}: ${e.field ? `${e.field}: ` : ""}${e.message}`); }
      });
    }
    root.replaceChildren(
      h("h1", {}, name),
      h("div", { class: "grid2" },
        h("div", { class: "panel" }, h("h2", {}, "Settings"), h("dl", { class: "kv" },
          [["Script", h("a", { href: `#/scripts/${encodeURIComponent(task.script)}` }, `${task.script}${task.version ? ` v${task.version}` : " (latest)"}`)],
            ["Queue", task.queue], ["Timeout", `${task.timeout_seconds} s`],
            ["Attempts", `${task.max_attempts} (backoff ${task.retry_backoff_seconds} s, at most ${task.retry_backoff_max_seconds} s)`],
            ["Env", Object.keys(task.env || {}).join(", ") || "—"],
            ["Secrets", Object.keys(task.secrets || {}).join(", ") || "—"],
            ["Limits", json(task.limits)], ["Updated", fmtTime(task.updated_at)]]
            .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
        h("h2", {}, "Parameters"), h("pre", {}, json(task.parameters))),
        runForm || h("div", { class: "panel muted" }, "Your role cannot run tasks (operator or admin can).")),
      h("div", { class: "panel" }, h("h2", {}, "Schedules"), schedules.length
        ? h("ul", {}, schedules.map((s) => h("li", {}, h("code", {}, s.cron), ` ${s.timezone} · `, s.paused ? "paused" : `next ${fmtTime(s.next_fire_at)}`)))
        : h("p", { class: "muted" }, "None.")));
  }).catch((e) => {
    root.replaceChildren(h("h1", {}, name), h("p", {}, e.status === 404 ? "No such task." : e.message));
  });
  return root;
}

// ---------- schedules ----------

function pageSchedules() {
  const root = h("div", {}, h("h1", {}, "Schedules"), h("p", { class: "muted" }, "Loading…"));
  const act = async (s, what) => {
    try {
      const out = await post(`/schedules/${s.id}/${what}`);
      banner(what === "trigger" ? `Triggered: run ${out.id.slice(0, 8)} queued.` : `Schedule ${what}d.`, true);
      load();
    } catch (e) { banner(`Cannot ${what}: ${e.message}`); }
  };
  const load = () => get("/schedules").then((schedules) => {
    root.replaceChildren(h("h1", {}, "Schedules"), h("div", { class: "table-wrap" }, h("table", { id: "schedules-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Task"), h("th", {}, "Cron"), h("th", { class: "wide" }, "Timezone"),
        h("th", {}, "Next fire"), h("th", { class: "wide" }, "Last fired"), h("th", {}, "State"), h("th", {}, ""))),
      h("tbody", {}, schedules.length === 0
        ? h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No schedules yet."))
        : schedules.map((s) => h("tr", { dataset: { id: s.id, task: s.task } },
          h("td", {}, h("a", { href: `#/tasks/${encodeURIComponent(s.task)}` }, s.task)),
          h("td", {}, h("code", {}, s.cron)),
          h("td", { class: "wide" }, s.timezone),
          h("td", { class: "next" }, s.paused ? "—" : h("span", { title: fmtTime(s.next_fire_at) }, `${fmtTime(s.next_fire_at)} (${ago(s.next_fire_at)})`)),
          h("td", { class: "wide" }, when(s.last_fired_at)),
          h("td", {}, badge(s.paused ? "paused" : "active")),
          h("td", { class: "row" },
            can("admin") ? (s.paused
              ? h("button", { class: "ghost", dataset: { action: "resume" }, onclick: () => act(s, "resume") }, "Resume")
              : h("button", { class: "ghost", dataset: { action: "pause" }, onclick: () => act(s, "pause") }, "Pause")) : "",
            can("operator") ? h("button", { class: "ghost", dataset: { action: "trigger" }, onclick: () => act(s, "trigger") }, "Trigger now") : "")))))));
  }).catch((e) => banner(`Cannot list schedules: ${e.message}`));
  load();
  every(10000, () => { if (!document.hidden) load(); });
  return root;
}

// ---------- fleet ----------

function pageFleet() {
  const root = h("div", {}, h("h1", {}, "Fleet"), h("p", { class: "muted" }, "Loading…"));
  const load = () => get("/fleet").then((f) => {
    const alive = f.consumers.filter((c) => c.alive);
    const queued = f.queues.reduce((n, q) => n + q.queued, 0);
    const card = (n, l, id) => h("div", { class: "card", id }, h("div", { class: "n" }, n), h("div", { class: "l" }, l));
    root.replaceChildren(
      h("h1", {}, "Fleet"),
      h("div", { class: "cards" },
        card(alive.length, "consumers up", "fleet-consumers"),
        card(`${f.busy} / ${f.slots}`, "slots busy", "fleet-slots"),
        card(queued, "runs queued", "fleet-queued"),
        card(f.queues.reduce((n, q) => n + q.running, 0), "runs running", "fleet-running")),
      h("h2", {}, "Consumers"),
      h("div", { class: "table-wrap" }, h("table", { id: "consumers-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Consumer"), h("th", {}, "State"), h("th", {}, "Busy"), h("th", { class: "wide" }, "Queues"),
          h("th", {}, "Venvs"), h("th", { class: "wide" }, "Version"), h("th", { class: "wide" }, "Started"), h("th", {}, "Seen"))),
        h("tbody", {}, f.consumers.length === 0
          ? h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No consumer has announced itself."))
          : f.consumers.map((c) => h("tr", {},
            h("td", { class: "mono" }, c.worker_id),
            h("td", {}, badge(c.alive ? "alive" : "gone")),
            h("td", {}, h("div", { class: "row" }, h("div", { class: "bar", title: `${c.busy} of ${c.slots}` },
              h("span", { style: `width:${c.slots ? Math.round((100 * c.busy) / c.slots) : 0}%` })), `${c.busy}/${c.slots}`)),
            h("td", { class: "wide" }, c.queues.join(", ")),
            h("td", {}, `${c.venv_entries} · ${bytes(c.venv_bytes)}`),
            h("td", { class: "wide" }, c.version),
            h("td", { class: "wide" }, when(c.started_at)),
            h("td", {}, `${Math.round(c.seen_seconds_ago)} s ago`)))))),
      h("h2", {}, "Queues"),
      h("div", { class: "table-wrap" }, h("table", { id: "queues-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Queue"), h("th", {}, "Ready"), h("th", {}, "Consumers"), h("th", {}, "Queued"),
          h("th", {}, "Running"), h("th", { class: "wide" }, "Retrying"), h("th", {}, "Oldest wait"))),
        h("tbody", {}, f.queues.map((q) => h("tr", {},
          h("td", {}, q.queue), h("td", {}, q.messages_ready), h("td", {}, q.consumers), h("td", {}, q.queued),
          h("td", {}, q.running), h("td", { class: "wide" }, q.retrying), h("td", {}, `${q.oldest_run_age_seconds.toFixed(1)} s`)))))));
  }).catch((e) => banner(`Cannot read the fleet: ${e.message}`));
  load();
  every(3000, () => { if (!document.hidden) load(); });
  return root;
}

// ---------- router ----------

async function route() {
  for (const stop of app.cleanups.splice(0)) stop();
  const hash = location.hash || "#/runs";
  const [path, query] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  if (!app.me && app.token) {
    try { await login(app.token); } catch { app.token = ""; localStorage.removeItem(TOKEN_KEY); }
  }
  showShell();
  const main = document.getElementById("main");
  if (!app.me) {
    if (parts[0] !== "login") { location.hash = "#/login"; return; }
    main.replaceChildren(pageLogin());
    return;
  }
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.nav === parts[0]);
  const [page, arg] = parts;
  let view;
  if (page === "runs" && arg) view = pageRun(arg);
  else if (page === "scripts" && arg) view = pageScript(arg);
  else if (page === "scripts") view = pageScripts();
  else if (page === "tasks" && arg) view = pageTask(arg);
  else if (page === "tasks") view = pageTasks();
  else if (page === "schedules") view = pageSchedules();
  else if (page === "fleet") view = pageFleet();
  else if (page === "runs") view = pageRuns(params);
  else { location.hash = "#/runs"; return; }
  main.replaceChildren(view);
}

applyTheme();
window.addEventListener("hashchange", () => { banner(""); route(); });
route();
