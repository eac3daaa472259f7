// Texts live in /static/i18n/<lang>.json, one dictionary per language. The server writes the
// language into <html lang>; this module translates every element with data-i18n (its text) or
// data-i18n-attr ("attribute:key;attribute:key"). Texts are always set with textContent or
// setAttribute, never as HTML.

export const lang = document.documentElement.lang === "en" ? "en" : "de";
export const locale = lang === "en" ? "en-GB" : "de-DE";

let dictionary = {};

export const ready = load();

async function load() {
  try {
    const response = await fetch(`/static/i18n/${lang}.json`, { credentials: "same-origin" });
    dictionary = await response.json();
  } catch {
    dictionary = {};
  }
  translate(document);
  setUpLanguageSwitch();
  document.documentElement.classList.add("i18n-ready");
}

/** The text for `key`, with `{name}` placeholders filled from `values`. */
export function t(key, values = {}) {
  const text = Object.hasOwn(dictionary, key) ? dictionary[key] : key;
  return text.replace(/\{(\w+)\}/g, (match, name) =>
    Object.hasOwn(values, name) ? String(values[name]) : match,
  );
}

/** The text for `key`, or for `fallback` when the dictionary has no `key`. */
export function tOr(key, fallback, values = {}) {
  return t(Object.hasOwn(dictionary, key) ? key : fallback, values);
}

export function translate(root) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    if (Object.hasOwn(dictionary, element.dataset.i18n)) {
      element.textContent = dictionary[element.dataset.i18n];
    }
  }
  for (const element of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of element.dataset.i18nAttr.split(";")) {
      const [attribute, key] = pair.split(":");
      if (Object.hasOwn(dictionary, key)) element.setAttribute(attribute, dictionary[key]);
    }
  }
}

/** Set an element's text from a key; keeps data-i18n so a later translate() agrees. */
export function setText(element, key, values) {
  element.textContent = t(key, values);
}

function setUpLanguageSwitch() {
  const other = lang === "en" ? "de" : "en";
  for (const link of document.querySelectorAll("a.lang-switch")) {
    link.href = `?lang=${other}${location.hash}`; // the fragment may carry the e2ee secret
    link.hreflang = other;
    link.lang = other;
    link.textContent = other === "en" ? "English" : "Deutsch";
  }
}

export function formatDate(date, options) {
  return new Intl.DateTimeFormat(locale, options).format(date);
}

export function formatTime(date) {
  return new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit" }).format(date);
}

export function formatDay(date) {
  return formatDate(date, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
}
