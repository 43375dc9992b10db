// npm standardwebhooks 1.1.1: new Webhook(secret[, {format:"raw"}]).verify(payload, headers).
// Secret handling:
//   * "whsec_<base64>"   -> new Webhook(secret): strips whsec_, base64-decodes (@stablelib/base64;
//                           throws on invalid base64).
//   * any other secret   -> new Webhook(new TextEncoder().encode(secret), { format: "raw" }):
//                           a Uint8Array is used verbatim as the HMAC key.  (A *string* with
//                           format:"raw" is converted with charCodeAt(0) per UTF-16 unit, which is
//                           only correct for ASCII/Latin-1 secrets — so always pass bytes.)
// Checks: webhook-id/webhook-timestamp/webhook-signature present; |now - ts| <= 300 s;
// some "v1,<base64>" entry (space-separated list) equals base64(HMAC-SHA256(key, "id.ts.body"));
// then JSON.parse(body).  FAKE_NOW=1 pins Date.now() to webhook-timestamp.
import { Webhook } from "standardwebhooks";
import { load, finish, notApplicable, isStandardWebhooks } from "./_common.mjs";

const NAME = "js-standardwebhooks";
const { d, lower, body } = load(NAME);
if (!isStandardWebhooks(lower)) notApplicable(d, NAME, "no webhook-id/webhook-timestamp/webhook-signature headers");
const secret = d.standardwebhooks_secret ?? d.secret;
if (!secret) finish(false, NAME, "delivery has no secret");
let wh, mode;
try {
  if (secret.startsWith("whsec_")) { wh = new Webhook(secret); mode = "whsec_ (base64 key)"; }
  else { wh = new Webhook(new TextEncoder().encode(secret), { format: "raw" }); mode = "raw bytes key"; }
} catch (e) { finish(false, NAME, `bad secret: ${e.message}`); }
try {
  const payload = wh.verify(body, lower);
  finish(true, NAME, `signature ok [${mode}], JSON parsed (${payload === undefined ? "empty" : typeof payload})`);
} catch (e) {
  finish(false, NAME, `${e.name}: ${e.message} [${mode}]`);
}
