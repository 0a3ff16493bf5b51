// DOM helpers. No innerHTML anywhere: every piece of data goes into the page through
// textContent or an attribute we control, so captured prompt text (attacker-controlled) is
// always inert text.

const SVG_NS = "http://www.w3.org/2000/svg";

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function callLink(spanId, label) {
  // span ids come from the API as 16 hex digits; encode anyway.
  return h("a", { href: "/ui/calls/" + encodeURIComponent(spanId) }, label);
}

export const app = () => document.getElementById("app");

export function show(...children) {
  const root = app();
  root.replaceChildren();
  append(root, children);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, String(error.message || error));
}
