import * as assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { serverKeys, serverOptions } from "../src/options";

const manifest = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8"));
const properties = manifest.contributes.configuration.properties;

test("server keys are the contributed settings minus the extension's own", () => {
  const keys = serverKeys(properties);
  assert.ok(keys.includes("completion.maxLines"));
  assert.ok(keys.includes("model.path"));
  assert.ok(keys.includes("languages"));
  assert.ok(!keys.includes("enable"));
  assert.ok(!keys.includes("serverCommand"));
  assert.equal(keys.length, Object.keys(properties).length - 2);
});

test("only values the user set are sent, nested by dots", () => {
  const user: Record<string, unknown> = {
    "completion.maxLines": 4,
    "model.path": "/models/dream",
    "sampler.threshold": null,
    languages: { rust: false },
  };
  const options = serverOptions(serverKeys(properties), (key) => user[key]);
  assert.deepEqual(options, {
    completion: { maxLines: 4 },
    model: { path: "/models/dream" },
    sampler: { threshold: null },
    languages: { rust: false },
  });
});

test("nothing set sends an empty object", () => {
  assert.deepEqual(serverOptions(serverKeys(properties), () => undefined), {});
});
