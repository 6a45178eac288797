// The runfleet console in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): sign in with a token, run a task and watch it finish with its logs,
// pause a schedule, compare script versions, see the fleet, and check that actions a role
// may not take are hidden. Started by `cargo run -p runfleet-tests --bin console-e2e`,
// which starts and seeds the fleet and passes its URL and tokens in the environment.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this through the console-e2e binary`);
  return v;
};
const BASE = env("RUNFLEET_URL");
const ADMIN = env("RUNFLEET_ADMIN_TOKEN");
const OPERATOR = env("RUNFLEET_OPERATOR_TOKEN");
const VIEWER = env("RUNFLEET_VIEWER_TOKEN");
const SCHEDULE = env("RUNFLEET_SCHEDULE_ID");
const FAILED_RUN = env("RUNFLEET_FAILED_RUN");
const RETRY_RUN = env("RUNFLEET_RETRY_RUN");
const SHOTS = env("RUNFLEET_SCREENSHOTS");

let browser;
const problems = []; // console errors, page errors and CSP violations, from every page

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
});

/** A fresh page (own storage) of the given size and colour scheme, watched for errors. */
async function newPage(options = {}) {
  const context = await browser.newContext({
    viewport: options.viewport || { width: 1366, height: 860 },
    colorScheme: options.colorScheme || "light",
    deviceScaleFactor: 1,
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    // A 401/403/404 answer the page asked for and handled is logged by Chromium too.
    if (m.type() === "error" && !/status of 40[134]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return page;
}

async function signIn(page, token) {
  await page.goto(`${BASE}/ui/`);
  await page.waitForSelector("#login-form");
  await page.fill("#token", token);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#runs-table");
}

const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

async function api(token, method, p) {
  const res = await fetch(`${BASE}${p}`, { method, headers: { Authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

test("a wrong token is refused with a clear message, a good one signs in", async () => {
  const page = await newPage();
  await page.goto(`${BASE}/ui/`);
  await page.waitForSelector("#login-form");
  await shot(page, "01-login");
  await page.fill("#token", "rfb_not-a-real-token");
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#banner:not([hidden])");
  assert.match(await page.textContent("#banner"), /unknown or revoked/);
  await page.fill("#token", ADMIN);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#runs-table");
  assert.equal(await page.textContent("#whoami"), "bootstrap · admin");
  const rows = await page.$$("#runs-table tbody tr[data-id]");
  assert.ok(rows.length >= 2, `the seeded runs are listed (${rows.length})`);
  await page.selectOption("#filter-status", "failed");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#runs-table tbody tr[data-id]")];
    return rows.length > 0 && rows.every((r) => r.querySelector("[data-status]").dataset.status === "failed");
  });
  assert.match(page.url(), /#\/runs\?status=failed/);
  await page.selectOption("#filter-status", "");
  await page.waitForFunction(() => document.querySelectorAll("#runs-table tbody tr[data-id]").length >= 2);
  await shot(page, "02-runs");
  await page.context().close();
});

test("a run submitted from a task is watched to the end, its logs live", async () => {
  const page = await newPage();
  await signIn(page, OPERATOR);
  await page.click("nav a[data-nav=tasks]");
  await page.click("#tasks-table a:text('nightly-report')");
  await page.waitForSelector("#run-form");
  await page.fill("#run-parameters", JSON.stringify({ day: "2026-12-01" }));
  await page.click("#run-task");
  await page.waitForURL(/#\/runs\/[0-9a-f-]{36}$/);
  const id = page.url().split("/").pop();

  // While it runs, the first rows are already on the page.
  await page.waitForFunction(() => document.querySelector("#log")?.textContent.includes("row 1"), null, { timeout: 20000 });
  const statusWhileRow1 = await page.$eval("h1 [data-status]", (b) => b.dataset.status);
  const stored = await api(ADMIN, "GET", `/runs/${id}`);
  assert.equal(stored.body.status, "running", "row 1 shown while the run runs");
  assert.equal(statusWhileRow1, "running");
  assert.equal(await page.isVisible("#cancel"), true, "an operator can cancel a running run");
  await shot(page, "03-run-running");

  await page.waitForFunction(() => document.querySelector("h1 [data-status]")?.dataset.status === "succeeded", null, { timeout: 30000 });
  await page.waitForFunction(() => document.querySelector("#log")?.textContent.includes("rows done"));
  const log = await page.textContent("#log");
  for (const line of ["report for 2026-12-01", "row 1", "row 2", "row 3", "rows done"]) assert.ok(log.includes(line), `${line} in ${log}`);
  assert.deepEqual(JSON.parse(await page.textContent("#result")), { rows: 3, day: "2026-12-01" });
  assert.deepEqual(JSON.parse(await page.textContent("#parameters")), { day: "2026-12-01" });
  const timeline = await page.textContent("#timeline");
  assert.match(timeline, /Submitted/);
  assert.match(timeline, /Attempt 1 started/);
  assert.match(timeline, /Attempt 1 succeeded/);
  assert.equal(await page.isVisible("#retry"), true, "an operator can retry a finished run");
  assert.equal(await page.isVisible("#cancel"), false);
  await shot(page, "04-run-succeeded");
  await page.context().close();
});

test("an operator retries a failed run and reads each attempt's logs", async () => {
  const page = await newPage();
  await signIn(page, OPERATOR);
  await page.goto(`${BASE}/ui/#/runs/${RETRY_RUN}`);
  await page.waitForSelector("h1 [data-status=failed]");
  await page.click("#retry");
  await page.waitForFunction(() => document.querySelector("#timeline")?.textContent.includes("Attempt 2 failed"), null, { timeout: 20000 });
  await page.waitForSelector("h1 [data-status=failed]");
  const options = await page.$$eval("#log-attempt option", (o) => o.map((x) => x.value));
  assert.deepEqual(options, ["2", "1"]);
  assert.equal(await page.inputValue("#log-attempt"), "2");
  await page.waitForFunction(() => document.querySelector("#log")?.textContent.includes("no such table"));
  const stored = await api(OPERATOR, "GET", `/runs/${RETRY_RUN}/attempts`);
  assert.deepEqual(stored.body.map((a) => a.status), ["failed", "failed"]);
  await page.selectOption("#log-attempt", "1");
  await page.waitForFunction(() => document.querySelector("#log")?.textContent.includes("about to fail"));
  await page.context().close();
});

test("an admin pauses a schedule and sees its next fire times", async () => {
  const page = await newPage();
  await signIn(page, ADMIN);
  await page.click("nav a[data-nav=schedules]");
  const row = `#schedules-table tr[data-id="${SCHEDULE}"]`;
  await page.waitForSelector(row);
  assert.match(await page.textContent(`${row} td.next`), /\(in \d+/);
  await page.click(`${row} button[data-action=pause]`);
  await page.waitForSelector(`${row} [data-status=paused]`);
  await page.waitForSelector(`${row} button[data-action=resume]`);
  const stored = await api(ADMIN, "GET", `/schedules/${SCHEDULE}`);
  assert.equal(stored.body.paused, true);
  await shot(page, "05-schedules-paused");
  await page.click(`${row} button[data-action=resume]`);
  await page.waitForSelector(`${row} [data-status=active]`);
  assert.equal((await api(ADMIN, "GET", `/schedules/${SCHEDULE}`)).body.paused, false);
  await page.context().close();
});

test("two versions of a script are compared line by line", async () => {
  const page = await newPage();
  await signIn(page, VIEWER);
  await page.click("nav a[data-nav=scripts]");
  await page.click("#scripts-table a:text('report.py')");
  await page.waitForSelector("#diff .add");
  assert.equal(await page.inputValue("#diff-from"), "1");
  assert.equal(await page.inputValue("#diff-to"), "2");
  const added = await page.$$eval("#diff .add", (els) => els.map((e) => e.textContent));
  const removed = await page.$$eval("#diff .del", (els) => els.map((e) => e.textContent));
  assert.ok(added.some((l) => l.includes('print(f"row {i}")')), added.join("\n"));
  assert.ok(removed.some((l) => l.includes('print("report for", json.loads')), removed.join("\n"));
  assert.match(await page.textContent("#script-content"), /rows done/);
  await page.selectOption("#show-version", "1");
  await page.waitForFunction(() => !document.querySelector("#script-content").textContent.includes("rows done"));
  await shot(page, "06-script-diff");
  await page.context().close();
});

test("the fleet page shows the consumer, its slots and the queues", async () => {
  const page = await newPage();
  await signIn(page, VIEWER);
  await page.click("nav a[data-nav=fleet]");
  await page.waitForSelector("#consumers-table tbody tr [data-status=alive]");
  assert.equal(await page.textContent("#fleet-consumers .n"), "1");
  assert.match(await page.textContent("#fleet-slots .n"), /^\d \/ 2$/);
  const queues = await page.$$eval("#queues-table tbody tr td:first-child", (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(queues, ["default", "other"]);
  await shot(page, "07-fleet");
  await page.context().close();
});

test("a viewer sees no action its role may not take", async () => {
  const page = await newPage();
  await signIn(page, VIEWER);
  assert.equal(await page.textContent("#whoami"), "ui-viewer · viewer");
  await page.goto(`${BASE}/ui/#/runs/${FAILED_RUN}`);
  await page.waitForSelector("h1 [data-status=failed]");
  assert.match(await page.textContent("#run-error"), /exit|3/);
  await page.waitForFunction(() => document.querySelector("#log")?.textContent.includes("no such table"));
  assert.equal(await page.$("#retry"), null, "no retry button for a viewer");
  assert.equal(await page.$("#cancel"), null);
  // The API agrees: the same action is a 403.
  const refused = await api(VIEWER, "POST", `/runs/${FAILED_RUN}/retry`);
  assert.equal(refused.status, 403);
  await shot(page, "08-viewer-run");

  await page.click("nav a[data-nav=schedules]");
  await page.waitForSelector(`#schedules-table tr[data-id="${SCHEDULE}"]`);
  assert.equal(await page.$$eval("#schedules-table button", (b) => b.length), 0, "no pause/resume/trigger for a viewer");
  await page.goto(`${BASE}/ui/#/tasks/nightly-report`);
  await page.waitForSelector("text=Your role cannot run tasks");
  assert.equal(await page.$("#run-form"), null);
  await page.context().close();

  // An operator may trigger but not pause.
  const op = await newPage();
  await signIn(op, OPERATOR);
  await op.click("nav a[data-nav=schedules]");
  await op.waitForSelector(`#schedules-table tr[data-id="${SCHEDULE}"] button[data-action=trigger]`);
  assert.equal(await op.$(`#schedules-table button[data-action=pause]`), null);
  await op.context().close();
});

test("the console fits a phone and has a dark theme", async () => {
  const phone = await newPage({ viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  await signIn(phone, ADMIN);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling of the page (${overflow}px too wide)`);
  const bg = await phone.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, "rgb(18, 21, 27)", "dark background from the system preference");
  await shot(phone, "09-phone-dark-runs");
  await phone.goto(`${BASE}/ui/#/runs/${FAILED_RUN}`);
  await phone.waitForSelector("h1 [data-status=failed]");
  await shot(phone, "10-phone-dark-run");
  await phone.context().close();

  const forced = await newPage({ colorScheme: "dark" });
  await signIn(forced, ADMIN);
  await forced.click("#theme"); // auto → light
  const light = await forced.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(light, "rgb(246, 247, 249)", "the theme button forces light");
  await forced.context().close();
});

test("no page logged an error or broke its content security policy", () => {
  assert.deepEqual(problems, []);
});
