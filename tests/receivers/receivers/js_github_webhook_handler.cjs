// npm github-webhook-handler 1.0.0 (rvagg): verifies X-Hub-Signature "sha1=<hex>" ONLY
// (X-Hub-Signature-256 is ignored). Requires headers x-hub-signature, x-github-event,
// x-github-delivery (else 400), HMAC-SHA1 over the raw body (timing-safe compare), JSON.parse.
// Does not look at Content-Type.  Driven with an in-memory request stream (no socket).
const { Readable } = require("node:stream");
const createHandler = require("github-webhook-handler");

(async () => {
  const { load, finish, notApplicable, isGithub } = await import("./_common.mjs");
  const NAME = "js-github-webhook-handler";
  const { d, lower, body, secret } = load(NAME);
  if (!isGithub(lower)) notApplicable(d, NAME, "no X-GitHub-Event header");
  if (!secret) finish(false, NAME, "delivery has no secret (handler requires one)");
  const handler = createHandler({ path: "/webhook", secret });
  let emitted = null;
  handler.on("*", (e) => { emitted = e; });
  handler.on("error", () => {});
  const req = Readable.from([Buffer.from(body, "utf8")]);
  req.headers = lower; req.url = "/webhook"; req.method = "POST";
  const res = { status: 0, body: "", writeHead(s) { this.status = s; }, end(b) { this.body = String(b || ""); done(); } };
  let done;
  await new Promise((resolve) => {
    done = resolve;
    handler(req, res, (err) => { if (err) resolve(); });
  });
  if (res.status !== 200) finish(false, NAME, `HTTP ${res.status}: ${res.body}`);
  await new Promise((r) => setImmediate(r));
  if (!emitted) finish(false, NAME, "HTTP 200 but no event emitted");
  finish(true, NAME, `HTTP 200, sha1 signature ok, emitted '${emitted.event}'`);
})();
