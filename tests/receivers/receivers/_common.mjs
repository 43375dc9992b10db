// Shared helpers for the Node receiver programs (same contract as _common.py).
import { readFileSync } from "node:fs";
export const ACCEPT = 0, REFUSE = 1, NA = 2, HARNESS = 3;

export function load(name) {
  const file = process.argv[2];
  if (!file) { console.error(`usage: node ${process.argv[1]} DELIVERY.json`); process.exit(HARNESS); }
  let d;
  try {
    d = JSON.parse(readFileSync(file, "utf8"));
    if (typeof d.body !== "string") throw new TypeError("body must be a string (the raw request body)");
    if (typeof d.headers !== "object") throw new TypeError("headers must be an object");
  } catch (e) {
    console.log(`${name}: HARNESS ERROR reading ${file}: ${e.message}`);
    process.exit(HARNESS);
  }
  const lower = {};
  for (const [k, v] of Object.entries(d.headers)) lower[k.toLowerCase()] = String(v);
  if (process.env.FAKE_NOW === "1" && lower["webhook-timestamp"]) {
    const pinned = parseInt(lower["webhook-timestamp"], 10) * 1000;
    Date.now = () => pinned;
  }
  return { d, headers: d.headers, lower, body: d.body, secret: d.secret };
}

export function finish(ok, name, msg) {
  console.log(`${name}: ${ok ? "ACCEPT" : "REFUSE"}: ${msg}`);
  process.exit(ok ? ACCEPT : REFUSE);
}

export function notApplicable(d, name, why) {
  if (process.env.STRICT === "1" || (d.receivers || []).includes(name)) finish(false, name, `not applicable but required: ${why}`);
  console.log(`${name}: N/A (${why})`);
  process.exit(NA);
}

export const isGithub = (l) => "x-github-event" in l;
export const isGitlab = (l) => "x-gitlab-event" in l;
export const isStandardWebhooks = (l) => ["webhook-id", "webhook-timestamp", "webhook-signature"].some((h) => h in l);
