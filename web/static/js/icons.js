// Icons from our own sprite (/static/icons/sprite.svg), never emoji: a machine without an
// emoji font (a plain Debian, many kiosks) draws an empty box where the lock emoji should be. The sprite
// is same-origin, so the CSP's img-src 'self' covers it; the icons take the text's colour.

const SPRITE = "/static/icons/sprite.svg";
const SVG = "http://www.w3.org/2000/svg";

/** An <svg> showing icon `name` (an id in the sprite), hidden from screen readers. */
export function icon(name, className = "icon") {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.dataset.icon = name;
  const use = document.createElementNS(SVG, "use");
  use.setAttribute("href", `${SPRITE}#${name}`);
  svg.append(use);
  return svg;
}
