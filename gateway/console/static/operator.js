// What needs an operator: post jobs in needs_review (three resolutions),
// pending withdrawals (complete or reject), channels suspended because their
// owner lost the chat (to know of; the owner resubmits) and outbox dead
// letters (retry).
import { call, errorText } from "./api.js";
import { announce, el, field, link, money, show, time, uniqueId } from "./dom.js";

const PAGE_SIZE = 20;
let $;

// One list: its route and query, how an item looks, its "Load more" cursor.
const LISTS = {
  jobs: { path: "/api/post-jobs", query: { status: "needs_review" }, render: renderJob,
          empty: "No post job waits for review." },
  withdrawals: { path: "/api/withdrawals", query: { status: "pending" }, render: renderWithdrawal,
                 empty: "No withdrawal waits." },
  suspended: { path: "/api/channels", query: { status: "suspended" }, render: renderSuspended,
               empty: "No channel is suspended." },
  dead: { path: "/api/outbox/dead-letters", query: {}, render: renderDeadLetter, empty: "No dead letter." },
};

export function setUpOperator() {
  $ = (id) => document.getElementById(id);
  $("operator-refresh").addEventListener("click", loadOperator);
  for (const name of Object.keys(LISTS)) {
    $(`${name}-more`).addEventListener("click", () => loadList(name, false));
  }
}

export async function loadOperator() {
  await Promise.all(Object.keys(LISTS).map((name) => loadList(name, true)));
}

async function loadList(name, fresh) {
  const list = LISTS[name];
  const status = $(`${name}-status`);
  if (fresh) list.cursor = "";
  status.textContent = "Loading…";
  const answer = await call("GET", list.path, { query: { ...list.query, limit: PAGE_SIZE, cursor: list.cursor } });
  if (answer.status !== 200) {
    status.textContent = `Could not be loaded: ${errorText(answer.status, answer.body)}`;
    return;
  }
  const nodes = answer.body.items.map(list.render);
  if (fresh) $(`${name}-list`).replaceChildren(...nodes);
  else $(`${name}-list`).append(...nodes);
  list.cursor = answer.body.nextCursor || "";
  $(`${name}-more`).hidden = !answer.body.nextCursor;
  const shown = $(`${name}-list`).children.length;
  status.textContent = shown ? `${shown} shown.` : list.empty;
}

// A form of one action on an item: its inputs (labelled) and button; the
// button is disabled while the call runs, so a double click acts once.
function action({ label, inputs = [], danger = false, run }) {
  const button = el("button", { type: "submit", class: danger ? "danger" : "", text: label });
  const controls = inputs.map((input) => {
    const id = uniqueId("input");
    input.control = el("input", { id, type: "text", autocomplete: "off", maxlength: input.max || 1000,
                                  placeholder: input.placeholder || "", "data-name": input.name });
    return el("div", {}, el("label", { for: id, text: input.label }), input.control);
  });
  const form = el("form", { class: "action", novalidate: true }, controls, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (form.dataset.busy) return;
    const values = Object.fromEntries(inputs.map((input) => [input.name, input.control.value.trim()]));
    const missing = inputs.find((input) => !values[input.name]);
    const item = form.closest(".item");
    const result = item.querySelector(".result");
    if (missing) {
      show(result, "bad", `Fill in “${missing.label}” first.`);
      missing.control.setAttribute("aria-invalid", "true");
      missing.control.focus();
      return;
    }
    inputs.forEach((input) => input.control.removeAttribute("aria-invalid"));
    form.dataset.busy = "1";
    item.querySelectorAll("button, input").forEach((control) => { control.disabled = true; });
    show(result, "pending", "Working…");
    let settled = false;
    try {
      const { status, body } = await run(values);
      if (status >= 200 && status < 300) {
        settled = true;
        item.classList.add("decided");
        show(result, "good", doneText(body));
        announce(doneText(body));
      } else if (status !== 401) {
        show(result, "bad", `Refused: ${errorText(status, body)}`);
        announce(`Refused: ${errorText(status, body)}`);
      }
    } finally {
      delete form.dataset.busy;
      if (!settled) item.querySelectorAll("button, input").forEach((control) => { control.disabled = false; });
    }
  });
  return form;
}

function doneText(body) {
  if (body?.executeAt) return `Resolved: the job is ${body.status}.`;
  if (body?.destination !== undefined) return `Withdrawal ${body.status}.`;
  if (body?.service) return `Requeued: ${body.service} message ${body.id} is pending again.`;
  return "Done.";
}

function item(titleText, facts, actions) {
  const titleId = uniqueId("op");
  return el("li", { class: "item", "aria-labelledby": titleId },
    el("h4", { id: titleId, text: titleText }),
    el("dl", { class: "facts" }, facts),
    el("div", { class: "actions" }, actions),
    el("p", { class: "result", role: "status", hidden: true }));
}

function renderJob(entry) {
  const job = entry.postJob;
  const resolve = (body) => call("POST", `/api/post-jobs/${job.id}/resolve`, { body });
  return item(`Post job ${job.id}`, [
    field("Target", el("code", { text: entry.targetId })),
    field("Campaign", el("code", { text: entry.campaignId })),
    field("Due", time(job.executeAt)),
    field("Price", money(entry.price, entry.currency)),
    field("Why", job.failureReason || "Its worker stopped during the Bot API call"),
    job.messageUrl ? field("Message seen", link(job.messageUrl)) : null,
  ], [
    action({ label: "Mark published", inputs: [{ name: "messageUrl", label: "Message link",
                                                 placeholder: "https://t.me/channel/123", max: 2048 }],
             run: ({ messageUrl }) => resolve({ outcome: "published", messageUrl }) }),
    action({ label: "Retry", run: () => resolve({ outcome: "retry" }) }),
    action({ label: "Mark failed", danger: true, inputs: [{ name: "reason", label: "Why it failed" }],
             run: ({ reason }) => resolve({ outcome: "failed", reason }) }),
  ]);
}

function renderWithdrawal(w) {
  return item(`Withdrawal of ${money(w.amount, w.currency)}`, [
    field("User", el("code", { text: w.userId })),
    field("Destination", w.destination),
    field("Asked", time(w.createdAt)),
    field("Id", el("code", { text: w.id })),
  ], [
    action({ label: "Complete", inputs: [{ name: "externalReference", label: "Payment reference", max: 500 }],
             run: ({ externalReference }) => call("POST", `/api/withdrawals/${w.id}/complete`,
                                                  { body: { externalReference } }) }),
    action({ label: "Reject", danger: true, inputs: [{ name: "reason", label: "Why it is rejected" }],
             run: ({ reason }) => call("POST", `/api/withdrawals/${w.id}/reject`, { body: { reason } }) }),
  ]);
}

function renderSuspended(c) {
  return item(`${c.title} (${c.handle})`, [
    field("Why", c.rejectionReason || "—"),
    field("Owner", el("code", { text: c.ownerId })),
    field("Telegram chat", c.telegramChatId === null ? "—" : String(c.telegramChatId)),
    field("Id", el("code", { text: c.id })),
  ], []);
}

function renderDeadLetter(m) {
  return item(`${m.service} message ${m.id}: ${m.topic}`, [
    field("About", el("code", { text: m.aggregateId })),
    field("Attempts", String(m.attempts)),
    field("Last error", m.lastError || "—"),
    field("Written", time(m.createdAt)),
  ], [
    action({ label: "Retry", run: () => call("POST", `/api/outbox/${m.service}/dead-letters/${m.id}/retry`) }),
  ]);
}
