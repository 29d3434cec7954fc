// Building the page from API data with DOM calls only: text goes in as
// text (textContent), never as HTML, so a creative cannot inject markup.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Minor units as money in the currency's own digits, in the browser's locale.
export function money(amount, currency) {
  try {
    const format = new Intl.NumberFormat(undefined, { style: "currency", currency });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(amount / 10 ** digits);
  } catch {
    return `${amount} ${currency} (minor units)`;
  }
}

// A <time>: the browser's time zone in text, the UTC value on hover.
export function time(iso) {
  if (!iso) return el("span", { text: "—" });
  const moment = new Date(iso);
  const local = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  }).format(moment);
  return el("time", { datetime: iso, title: `UTC: ${moment.toISOString()}`, text: local });
}

// An external link opened apart from the console (no referrer, no opener).
export function link(url, text) {
  if (!/^https?:\/\//i.test(url || "")) return el("span", { text: url || "—" });
  return el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: text || url });
}

export function field(label, value) {
  return el("div", { class: "field" }, el("dt", { text: label }), el("dd", {}, value));
}

let announcer;

// Said by screen readers (aria-live) as well as shown next to the item.
export function announce(text) {
  announcer = announcer || document.getElementById("announcer");
  announcer.textContent = "";
  window.setTimeout(() => { announcer.textContent = text; }, 30);
}

export function show(result, kind, text) {
  result.hidden = false;
  result.className = `result ${kind}`;
  result.textContent = text;
}

let idSequence = 0;

export function uniqueId(prefix) {
  idSequence += 1;
  return `${prefix}-${idSequence}`;
}
