// VS Code's protocol stack against the real server: starts `python -m lsp_server --model $UNMASK_MODEL`,
// opens a Python document, waits for the model, asks for textDocument/inlineCompletion twice (after an
// incremental edit) and checks the items. Run: UNMASK_MODEL=dir PYTHON=python node tests/editors/inline_completion.mjs
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const require = createRequire(join(repo, "editors", "vscode", "package.json"));
const rpc = require("vscode-jsonrpc/node");
const lsp = require("vscode-languageserver-protocol");

const model = process.env.UNMASK_MODEL;
assert.ok(model, "set UNMASK_MODEL to a checkpoint folder");
const server = spawn(process.env.PYTHON ?? "python3", ["-m", "lsp_server", "--model", model], {
  cwd: repo,
  stdio: ["pipe", "pipe", "inherit"],
});
const connection = lsp.createProtocolConnection(
  new rpc.StreamMessageReader(server.stdout),
  new rpc.StreamMessageWriter(server.stdin),
);
connection.onRequest(lsp.WorkDoneProgressCreateRequest.type, () => null);
connection.listen();
const deadline = setTimeout(() => {
  console.error("timed out");
  server.kill();
  process.exit(2);
}, 60_000);

const init = await connection.sendRequest(lsp.InitializeRequest.type, {
  processId: process.pid,
  rootUri: pathToFileURL(repo).href,
  capabilities: { textDocument: { inlineCompletion: { dynamicRegistration: false } } },
  initializationOptions: { completion: { maxLines: 4 } },
});
assert.ok(init.capabilities.inlineCompletionProvider, "server advertises inlineCompletionProvider");
assert.equal(init.capabilities.textDocumentSync?.change ?? init.capabilities.textDocumentSync, lsp.TextDocumentSyncKind.Incremental);
await connection.sendNotification(lsp.InitializedNotification.type, {});

let status;
for (let tries = 0; tries < 200; tries++) {
  status = await connection.sendRequest("unmask/status", {});
  if (status.state !== "loading") break;
  await new Promise((resolve) => setTimeout(resolve, 100));
}
assert.equal(status.state, "ready", `model state: ${JSON.stringify(status)}`);

const uri = pathToFileURL(join(repo, "example.py")).href;
const text = "def add(a, b):\n    return \n\n\nprint(add(1, 2))\n";
await connection.sendNotification(lsp.DidOpenTextDocumentNotification.type, {
  textDocument: { uri, languageId: "python", version: 1, text },
});

async function inline(line, character) {
  const result = await connection.sendRequest(lsp.InlineCompletionRequest.type, {
    textDocument: { uri },
    position: { line, character },
    context: { triggerKind: lsp.InlineCompletionTriggerKind.Invoked },
  });
  const items = Array.isArray(result) ? result : result.items;
  assert.ok(items.length >= 1, `an item at ${line}:${character}: ${JSON.stringify(result)}`);
  const [item] = items;
  const insert = typeof item.insertText === "string" ? item.insertText : item.insertText.value;
  assert.ok(insert.length > 0, "non-empty insertText");
  assert.equal(item.range.start.line, line);
  assert.equal(item.range.end.line, line);
  assert.ok(item.range.start.character <= character && character <= item.range.end.character, JSON.stringify(item.range));
  return { insertText: insert, range: item.range };
}

const first = await inline(1, 11); // after "    return "
// An incremental edit: type "a + " after "return ", then ask again at the new cursor.
await connection.sendNotification(lsp.DidChangeTextDocumentNotification.type, {
  textDocument: { uri, version: 2 },
  contentChanges: [{ range: { start: { line: 1, character: 11 }, end: { line: 1, character: 11 } }, text: "a + " }],
});
const second = await inline(1, 15);
status = await connection.sendRequest("unmask/status", {});
assert.ok(status.latencies_ms.count >= 2, `latencies recorded: ${JSON.stringify(status.latencies_ms)}`);

await connection.sendRequest(lsp.ShutdownRequest.type);
await connection.sendNotification(lsp.ExitNotification.type);
clearTimeout(deadline);
console.log(JSON.stringify({ first, second, status: { state: status.state, family: status.family, latencies_ms: status.latencies_ms } }));
connection.dispose();
