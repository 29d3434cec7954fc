// The moderation queue: submitted targets, oldest submission first, a page
// at a time with the API's cursors; approve with one click, reject with a
// reason; each decision's result shown as it settles (202: followed by
// polling the decision until it ends).
import { call, errorText } from "./api.js";
import { announce, el, field, link, money, show, time, uniqueId } from "./dom.js";

const PAGE_SIZE = 20;
const POLL_MS = 500;
const FOLLOW_FOR_MS = 120_000;
const SETTLED = new Set(["approved", "failed", "rejected"]);
export const REASON_TEMPLATES = [
  "The creative breaks the content policy",
  "Misleading or unverifiable claims",
  "The channel's audience does not fit this campaign",
  "The media link is broken or unsafe",
];

const state = { cursors: [""], page: 0, items: [], inFlight: new Set(), decided: new Set() };
let $;

export function setUpQueue() {
  $ = (id) => document.getElementById(id);
  $("queue-refresh").addEventListener("click", () => loadPage(state.page));
  $("queue-first").addEventListener("click", () => loadPage(0));
  $("queue-prev").addEventListener("click", () => loadPage(Math.max(0, state.page - 1)));
  $("queue-next").addEventListener("click", () => loadPage(state.page + 1));
  document.addEventListener("keydown", onKey);
}

export async function loadQueue() {
  state.cursors = [""];
  await loadPage(0);
}

async function loadPage(page) {
  const status = $("queue-status");
  status.textContent = "Loading…";
  const { status: code, body } = await call("GET", "/api/moderation/queue",
    { query: { limit: PAGE_SIZE, cursor: state.cursors[page] } });
  if (code !== 200) {
    status.textContent = `The queue could not be loaded: ${errorText(code, body)}`;
    return;
  }
  state.page = page;
  state.cursors[page + 1] = body.nextCursor || null;
  state.cursors.length = page + 2;
  const list = $("queue-list");
  list.replaceChildren(...body.items.map(renderItem));
  state.items = [...list.querySelectorAll(".item")];
  status.textContent = body.items.length ? `${body.items.length} submitted target(s) on this page.`
    : "Nothing to moderate.";
  $("queue-page").textContent = `Page ${page + 1}`;
  $("queue-prev").disabled = page === 0;
  $("queue-first").disabled = page === 0;
  $("queue-next").disabled = !body.nextCursor;
  body.items.forEach((item, index) => enrich(item, state.items[index]));
}

function renderItem(item) {
  const titleId = uniqueId("target");
  const reasonId = uniqueId("reason");
  const templateId = uniqueId("template");
  const creatives = item.creatives.length ? el("ul", { class: "creatives" }, item.creatives.map((creative) =>
    el("li", {}, el("p", { class: "creative-text", text: creative.text }),
      creative.mediaUrl ? el("p", { class: "media" }, "Media: ", link(creative.mediaUrl))
        : el("span", { class: "muted", text: "No media" }))))
    : el("span", { class: "muted", text: "No creative" });
  const result = el("p", { class: "result", role: "status", hidden: true });
  const approve = el("button", { type: "button", class: "approve", text: "Approve" });
  const reason = el("input", { id: reasonId, type: "text", class: "reason", maxlength: 1000, autocomplete: "off" });
  const template = el("select", { id: templateId, class: "template" },
    el("option", { value: "", text: "Pick a reason…" }),
    REASON_TEMPLATES.map((text) => el("option", { value: text, text })));
  const reject = el("button", { type: "submit", class: "reject danger", text: "Reject" });
  const form = el("form", { class: "reject-form", novalidate: true },
    el("div", { class: "reason-fields" },
      el("div", {}, el("label", { for: templateId, text: "Reason template" }), template),
      el("div", {}, el("label", { for: reasonId, text: "Reason for rejecting" }), reason)),
    reject);
  const node = el("li", { class: "item", tabindex: "-1", "aria-labelledby": titleId, "data-target-id": item.id },
    el("h3", { id: titleId }, item.campaignName, el("span", { class: "muted", text: ` · target ${item.id}` })),
    el("dl", { class: "facts" },
      field("Advertiser", el("code", { text: item.advertiserId })),
      field("Channel", `${item.channel.title} (${item.channel.handle})`),
      field("Scheduled", time(item.scheduledAt)),
      field("Price", money(item.price, item.currency)),
      field("Wallet", el("span", { class: "funds", text: "Checking…" })),
      field("Earlier decisions", el("span", { class: "history", text: "Checking…" }))),
    el("div", { class: "creative-block" }, el("h4", { text: "Creative" }), creatives),
    el("div", { class: "actions" }, approve, form),
    result);
  template.addEventListener("change", () => {
    if (template.value) reason.value = template.value;
    reason.focus();
  });
  approve.addEventListener("click", () => approveTarget(item, node));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    rejectTarget(item, node);
  });
  node.addEventListener("focusin", () => select(node, false));
  return node;
}

// The wallet check and the target's earlier decisions, filled in as they come.
async function enrich(item, node) {
  const funds = node.querySelector(".funds");
  const { status, body } = await call("GET", `/api/wallets/${item.advertiserId}`);
  if (status === 200 && body.currency !== item.currency) {
    // Amounts in two currencies do not compare: say so, never "covers".
    funds.textContent = `Cannot tell: the currencies differ (price in ${item.currency}, ` +
      `balance ${money(body.balance, body.currency)})`;
    funds.className = "funds bad";
  } else if (status === 200) {
    const covers = body.balance >= item.price;
    funds.textContent = `${covers ? "Covers the price" : "Does not cover the price"} (balance ${money(body.balance, body.currency)})`;
    funds.className = `funds ${covers ? "good" : "bad"}`;
  } else if (status === 404) {
    funds.textContent = "Does not cover the price (no wallet yet)";
    funds.className = "funds bad";
  } else {
    funds.textContent = `Unknown: ${errorText(status, body)}`;
  }
  const history = node.querySelector(".history");
  const answer = await call("GET", `/api/moderation/targets/${item.id}/decisions`, { query: { limit: 10 } });
  if (answer.status !== 200) {
    history.textContent = `Unknown: ${errorText(answer.status, answer.body)}`;
    return;
  }
  if (!answer.body.items.length) {
    history.textContent = "None";
    return;
  }
  history.replaceChildren(el("ul", { class: "decisions" }, answer.body.items.map((d) => el("li", {},
    d.decision === "reject" ? `Rejected before: “${d.reason}”` : `Approve ${d.status}${d.reason ? `: ${d.reason}` : ""}`,
    " ", d.decidedAt ? time(d.decidedAt) : ""))));
  if (answer.body.items.some((d) => d.decision === "reject")) node.classList.add("rejected-before");
}

function setBusy(node, busy) {
  node.querySelectorAll("button, input, select").forEach((control) => { control.disabled = busy; });
  node.setAttribute("aria-busy", busy ? "true" : "false");
}

async function approveTarget(item, node) {
  // A second click (or key press) while the first is in flight does nothing.
  if (state.inFlight.has(item.id) || state.decided.has(item.id)) return;
  state.inFlight.add(item.id);
  setBusy(node, true);
  const result = node.querySelector(".result");
  show(result, "pending", "Approving…");
  try {
    const { status, body } = await call("POST", `/api/moderation/targets/${item.id}/approve`);
    if (status === 200) {
      decided(item, node, "good", approvedText(body.postJobId, body.escrowId, body.alreadyApproved));
    } else if (status === 202) {
      show(result, "pending", `Still running (decision ${body.decisionId})… following it.`);
      announce("Approve still running");
      await follow(item, node);
    } else if (status === 402) {
      refused(node, `Refused: the advertiser's wallet cannot cover the price (402 ${body?.error?.code}).`);
    } else if (status !== 401) {
      refused(node, `Refused: ${errorText(status, body)}`);
    }
  } finally {
    state.inFlight.delete(item.id);
    if (!state.decided.has(item.id)) setBusy(node, false);
  }
}

function approvedText(postJobId, escrowId, already) {
  return `Approved${already ? " (already)" : ""}: post job ${postJobId}, escrow ${escrowId}.`;
}

// After a 202 (or a reject's 503): the decision, polled until it ends.
async function follow(item, node) {
  const result = node.querySelector(".result");
  const deadline = Date.now() + FOLLOW_FOR_MS;
  while (Date.now() < deadline) {
    await new Promise((resolve) => { window.setTimeout(resolve, POLL_MS); });
    const { status, body } = await call("GET", `/api/moderation/targets/${item.id}`);
    if (status === 401) return;
    if (status !== 200) continue;
    if (!SETTLED.has(body.status)) {
      show(result, "pending", `Still running: ${body.status}…`);
      continue;
    }
    if (body.status === "approved") {
      decided(item, node, "good", approvedText(body.postJobId, body.escrowId, false));
    } else if (body.status === "rejected") {
      decided(item, node, "good", `Rejected: “${body.reason}”.`);
    } else if (body.reason === "insufficient_funds") {
      refused(node, "Refused: the advertiser's wallet cannot cover the price (insufficient_funds).");
    } else {
      refused(node, `The approve failed: ${body.reason || body.status}.`);
    }
    return;
  }
  refused(node, "Still running after two minutes; refresh the queue later to see its end.");
}

async function rejectTarget(item, node) {
  if (state.inFlight.has(item.id) || state.decided.has(item.id)) return;
  const input = node.querySelector(".reason");
  const reason = input.value.trim();
  const result = node.querySelector(".result");
  if (!reason) {
    show(result, "bad", "Write a reason (or pick one) before rejecting.");
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  input.removeAttribute("aria-invalid");
  state.inFlight.add(item.id);
  setBusy(node, true);
  show(result, "pending", "Rejecting…");
  try {
    const { status, body } = await call("POST", `/api/moderation/targets/${item.id}/reject`, { body: { reason } });
    if (status === 200) {
      decided(item, node, "good", `Rejected: “${body.moderationReason}”.`);
    } else if (status === 503 && body?.error?.code === "unavailable") {
      // The rejection goes on past the gateway's wait: its decision shows the end.
      show(result, "pending", "Still being carried out… following it.");
      announce("Reject still running");
      await follow(item, node);
    } else if (status !== 401) {
      refused(node, `Refused: ${errorText(status, body)}`);
    }
  } finally {
    state.inFlight.delete(item.id);
    if (!state.decided.has(item.id)) setBusy(node, false);
  }
}

function decided(item, node, kind, text) {
  state.decided.add(item.id);
  node.classList.add("decided");
  setBusy(node, true);
  node.setAttribute("aria-busy", "false");
  show(node.querySelector(".result"), kind, text);
  announce(text);
}

function refused(node, text) {
  show(node.querySelector(".result"), "bad", text);
  announce(text);
}

// ---- keyboard: j/k move, a approves, r goes to the reason -------------------

function select(node, focus = true) {
  state.items.forEach((other) => other.classList.toggle("selected", other === node));
  if (focus) {
    node.focus();
    node.scrollIntoView({ block: "nearest" });
  }
}

function current() {
  return state.items.find((node) => node.classList.contains("selected"));
}

function onKey(event) {
  if (document.getElementById("view-queue").hidden) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const typing = event.target.closest("input, textarea, select");
  if (typing) {
    if (event.key === "Escape") current()?.focus();
    return;
  }
  const node = current();
  const index = state.items.indexOf(node);
  if (event.key === "j") {
    const next = state.items[Math.min(state.items.length - 1, index + 1)];
    if (next) select(next);
  } else if (event.key === "k") {
    const previous = state.items[Math.max(0, index - 1)];
    if (previous) select(previous);
  } else if (event.key === "a" && node) {
    node.querySelector(".approve").click();
  } else if (event.key === "r" && node) {
    event.preventDefault();
    node.querySelector(".reason").focus();
  } else {
    return;
  }
  event.preventDefault();
}
