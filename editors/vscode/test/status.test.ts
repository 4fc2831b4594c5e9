import * as assert from "node:assert/strict";
import { test } from "node:test";
import { ServerStatus, statusView } from "../src/status";

const ready: ServerStatus = {
  model: "/models/dream",
  family: "dream",
  device: "cpu",
  dtype: "float32",
  state: "ready",
  error: null,
  latencies_ms: { p50: 84.4, p95: 190.2, count: 12 },
};

test("ready shows the median latency and the model in the tooltip", () => {
  const view = statusView(ready, true, false);
  assert.equal(view.text, "unmask 84 ms");
  assert.match(view.tooltip, /\/models\/dream · dream · cpu · float32/);
  assert.match(view.tooltip, /p50 84 ms, p95 190 ms over 12 completions/);
});

test("a request on its way spins; disabled is crossed out", () => {
  assert.equal(statusView(ready, true, true).text, "$(sync~spin) unmask 84 ms");
  assert.equal(statusView(ready, false, false).text, "$(circle-slash) unmask 84 ms");
});

test("loading, failed and not yet started are visible", () => {
  assert.equal(statusView({ ...ready, state: "loading" }, true, false).text, "$(loading~spin) unmask: loading");
  const failed = statusView({ ...ready, state: "failed", error: "no config.json in /x" }, true, false);
  assert.equal(failed.text, "$(error) unmask");
  assert.match(failed.tooltip, /no config.json in \/x/);
  assert.equal(statusView(undefined, true, false).text, "$(loading~spin) unmask");
});

test("no completions yet shows no number", () => {
  const view = statusView({ ...ready, latencies_ms: { p50: null, p95: null, count: 0 } }, true, false);
  assert.equal(view.text, "unmask");
  assert.match(view.tooltip, /no completions yet/);
});
