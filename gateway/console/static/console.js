// The console's entry: sign-in (a pasted bearer token kept in this tab's
// sessionStorage), the admin check, the two views, sign-out. Any 401 from
// the API brings the sign-in back with its reason.
import { claimsOf, forgetToken, keepToken, storedToken, whenUnauthenticated } from "./api.js";
import { loadOperator, setUpOperator } from "./operator.js";
import { loadQueue, setUpQueue } from "./queue.js";

const $ = (id) => document.getElementById(id);
const VIEWS = ["signin", "refused", "queue", "operator"];

function showView(name) {
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== name;
  const signedIn = name === "queue" || name === "operator";
  $("tabs").hidden = !signedIn;
  for (const tab of $("tabs").querySelectorAll("a")) {
    if (tab.dataset.view === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
}

function signIn(reason) {
  forgetToken();
  $("who").hidden = true;
  $("signin-reason").hidden = !reason;
  $("signin-reason").textContent = reason ? `Signed out: ${reason}. Sign in again.` : "";
  $("token").value = "";
  showView("signin");
  $("token").focus();
}

// Checked in the browser for display only; the gateway decides.
function problemWith(claims) {
  if (!claims) return "That is not a JWT (three base64url parts separated by dots).";
  if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) return "That token has expired.";
  return null;
}

function start() {
  const token = storedToken();
  if (!token) {
    signIn(null);
    return;
  }
  const claims = claimsOf(token);
  const problem = problemWith(claims);
  if (problem) {
    signIn(problem.replace(/\.$/, "").toLowerCase());
    return;
  }
  $("who-sub").textContent = claims.sub || "unknown";
  $("who-role").textContent = claims.role || "no role";
  $("who").hidden = false;
  if (claims.role !== "admin") {
    $("refused-sub").textContent = claims.sub || "unknown";
    $("refused-role").textContent = claims.role || "none";
    showView("refused");
    $("refused-title").setAttribute("tabindex", "-1");
    $("refused-title").focus();
    return;
  }
  route();
}

function route() {
  if (!storedToken()) return;
  const view = window.location.hash === "#operator" ? "operator" : "queue";
  showView(view);
  if (view === "queue") loadQueue();
  else loadOperator();
}

function setUp() {
  setUpQueue();
  setUpOperator();
  whenUnauthenticated((message) => signIn(message));
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim().replace(/^Bearer\s+/i, "");
    const problem = problemWith(claimsOf(token));
    if (problem) {
      $("signin-error").textContent = problem;
      $("signin-error").hidden = false;
      $("token").setAttribute("aria-invalid", "true");
      $("token").focus();
      return;
    }
    $("signin-error").hidden = true;
    $("token").removeAttribute("aria-invalid");
    keepToken(token);
    start();
  });
  for (const button of [$("sign-out"), $("refused-sign-out")]) {
    button.addEventListener("click", () => signIn(null));
  }
  window.addEventListener("hashchange", route);
  start();
}

setUp();
