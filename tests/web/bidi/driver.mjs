// Drives Debian's firefox-esr over WebDriver BiDi (puppeteer-core, no browser download) for the
// Python tests (tests/web/firefox_bidi.py). One JSON object per line on stdin is a command
// {id, method, params}; stdout carries {id, result} or {id, error}, and events {event, page, ...}
// (console errors, uncaught exceptions). The tests keep their logic in Python, next to the real
// server and the Playwright chromium they call with.
import { createInterface } from "node:readline";
import puppeteer from "puppeteer-core";

let browser = null;
const contexts = new Map(); // id -> BrowserContext
const pages = new Map(); // id -> Page
let nextId = 1;

function emit(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function page(id) {
  const found = pages.get(id);
  if (!found) throw new Error(`no page ${id}`);
  return found;
}

const methods = {
  async launch({ executablePath, prefs, args }) {
    browser = await puppeteer.launch({
      browser: "firefox",
      protocol: "webDriverBiDi",
      executablePath,
      headless: true,
      args: args || [],
      extraPrefsFirefox: prefs || {},
    });
    return { version: await browser.version() };
  },

  async newContext() {
    const id = nextId++;
    contexts.set(id, await browser.createBrowserContext());
    return { context: id };
  },

  async newPage({ context, viewport }) {
    const created = await contexts.get(context).newPage();
    const id = nextId++;
    pages.set(id, created);
    if (viewport) await created.setViewport(viewport);
    created.on("console", (message) => {
      if (message.type() === "error") emit({ event: "error", page: id, text: message.text() });
    });
    created.on("pageerror", (error) => emit({ event: "error", page: id, text: String(error) }));
    // The therapist's "end session" asks confirm(); a person would say yes.
    created.on("dialog", (dialog) => dialog.accept().catch(() => {}));
    return { page: id };
  },

  async addInitScript({ page: id, source }) {
    await page(id).evaluateOnNewDocument(source);
    return {};
  },

  async goto({ page: id, url }) {
    const response = await page(id).goto(url, { waitUntil: "load" });
    return { status: response ? response.status() : null };
  },

  async reload({ page: id }) {
    await page(id).reload({ waitUntil: "load" });
    return {};
  },

  async url({ page: id }) {
    return { url: page(id).url() };
  },

  // A string is evaluated as an expression; a Promise is awaited.
  async evaluate({ page: id, expression }) {
    return { value: await page(id).evaluate(expression) };
  },

  // Real input events (puppeteer waits until the element is visible and enabled).
  async click({ page: id, selector, wait_ms: timeout }) {
    await page(id).locator(selector).setTimeout(timeout).click();
    return {};
  },

  async fill({ page: id, selector, value, wait_ms: timeout }) {
    await page(id).locator(selector).setTimeout(timeout).fill(value);
    return {};
  },

  async waitForNavigation({ page: id, timeout }) {
    await page(id).waitForNavigation({ timeout });
    return {};
  },

  async screenshot({ page: id, path }) {
    await page(id).screenshot({ path, fullPage: true });
    return {};
  },

  async closeContext({ context }) {
    await contexts.get(context).close();
    contexts.delete(context);
    return {};
  },

  async close() {
    if (browser) await browser.close();
    browser = null;
    return {};
  },
};

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  let command;
  try {
    command = JSON.parse(line);
  } catch {
    emit({ id: null, error: `not JSON: ${line.slice(0, 80)}` });
    return;
  }
  const method = methods[command.method];
  try {
    if (!method) throw new Error(`no method ${command.method}`);
    emit({ id: command.id, result: await method(command.params || {}) });
  } catch (error) {
    emit({ id: command.id, error: String(error && error.stack ? error.stack : error) });
  }
});
// stdin closed: the test process is gone, so is its browser.
lines.on("close", async () => {
  if (browser) await browser.close().catch(() => {});
  process.exit(0);
});
