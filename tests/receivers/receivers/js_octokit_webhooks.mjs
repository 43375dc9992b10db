// npm @octokit/webhooks 14.2.0 (+ @octokit/webhooks-methods 6.0.0, its verifier).
// Drives the library's real createWebMiddleware with a WHATWG Request (no socket), i.e. the same code
// path a deployed receiver uses: Content-Type must be application/json (else 415); headers
// x-github-event, x-hub-signature-256, x-github-delivery must all be present (else 400);
// verifyAndReceive(): HMAC-SHA256 "sha256=<hex>" over the raw body (sha1 X-Hub-Signature is ignored),
// then JSON.parse, then dispatch to handlers registered with webhooks.on(<event>) — webhooks.on()
// validates the event name against the library's list of known GitHub webhook names.
// Also cross-checks with @octokit/webhooks-methods verify() directly.
import { Webhooks, createWebMiddleware, emitterEventNames } from "@octokit/webhooks";
import { verify } from "@octokit/webhooks-methods";
import { load, finish, notApplicable, isGithub } from "./_common.mjs";

const NAME = "js-octokit-webhooks";
const { d, headers, lower, body, secret } = load(NAME);
if (!isGithub(lower)) notApplicable(d, NAME, "no X-GitHub-Event header");
if (!secret) finish(false, NAME, "delivery has no secret (Webhooks requires one)");

const event = lower["x-github-event"];
if (!emitterEventNames.includes(event)) finish(false, NAME, `unknown GitHub event name '${event}'`);

const webhooks = new Webhooks({ secret });
let received = null;
webhooks.on(event, (e) => { received = e; });
webhooks.onError(() => {});
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const middleware = createWebMiddleware(webhooks, { path: "/webhook", log: silent });

const send = {};
for (const [k, v] of Object.entries(headers)) if (!["content-length", "host"].includes(k.toLowerCase())) send[k] = v;
const req = new Request("http://localhost/webhook", { method: "POST", headers: send, body });
const res = await middleware(req);
const text = await res.text();
if (res.status !== 200) finish(false, NAME, `HTTP ${res.status}: ${text.trim()}`);
if (!received) finish(false, NAME, "HTTP 200 but the on(event) handler was not called");
if (received.id !== lower["x-github-delivery"]) finish(false, NAME, "handler got a different delivery id");

let direct;
try { direct = await verify(secret, body, lower["x-hub-signature-256"]); } catch (e) { direct = e.message; }
if (direct !== true) finish(false, NAME, `middleware accepted but webhooks-methods verify() said ${direct}`);
finish(true, NAME, `HTTP 200, sha256 signature ok (webhooks-methods verify ok), on('${event}') called`);
