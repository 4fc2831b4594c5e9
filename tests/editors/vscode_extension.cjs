// The compiled extension (editors/vscode/out) with its real vscode-languageclient, inside a fake `vscode`
// (fake_vscode.cjs), against the real server. Run after `npm run compile`:
//   UNMASK_MODEL=dir PYTHON=python node tests/editors/vscode_extension.cjs
// Checks: the server starts from `unmask.serverCommand` with the user's settings as initializationOptions, the
// status bar goes from loading to ready, VS Code's inline provider returns an item for an invoked and an
// automatic trigger, the suggest-widget provider stays out of the model's way, the light bulb's provider
// offers *Rewrite selection* for a selection and resolves it to an edit of exactly that range, and toggling
// turns ghost text off.
const assert = require("node:assert/strict");
const Module = require("node:module");
const path = require("node:path");

const vscode = require("./fake_vscode.cjs");
const load = Module._load;
Module._load = function (request, ...rest) {
  return request === "vscode" ? vscode : load.call(this, request, ...rest);
};

const repo = path.join(__dirname, "..", "..");
const extensionDir = path.join(repo, "editors", "vscode");
const { settings, providers, commands, statusItems, textDocument, messages } = vscode.fake;
const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const token = new vscode.CancellationTokenSource().token;

async function until(predicate, what, ms = 30000) {
  for (const end = Date.now() + ms; Date.now() < end; await wait(50)) {
    if (predicate()) return;
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function main() {
  settings.set("unmask.serverCommand", [process.env.PYTHON ?? "python3", "-m", "lsp_server", "--model", process.env.UNMASK_MODEL]);
  settings.set("unmask.completion.maxLines", 4);
  const doc = textDocument(path.join(repo, "example.py"), "python", "def add(a, b):\n    return \n\n\nprint(add(1, 2))\n");
  vscode.workspace.textDocuments.push(doc);

  const extension = require(path.join(extensionDir, "out", "src", "extension.js"));
  const context = { subscriptions: [], extension: { packageJSON: require(path.join(extensionDir, "package.json")) } };
  await extension.activate(context);
  const [item] = statusItems;
  const seen = [item.text];
  await until(() => (seen.at(-1) !== item.text && seen.push(item.text), /^unmask/.test(item.text)), "the model");

  const [{ provider: inline }] = providers.inlineCompletionItem;
  const ask = async (triggerKind) => {
    const result = await inline.provideInlineCompletionItems(doc, new vscode.Position(1, 11), { triggerKind }, token);
    const items = Array.isArray(result) ? result : result?.items;
    assert.ok(items?.length, `an inline item for trigger kind ${triggerKind}: ${JSON.stringify(result)}`);
    const [first] = items;
    assert.equal(typeof first.insertText, "string");
    assert.ok(first.insertText.trim(), "non-empty insertText");
    assert.ok(first.range instanceof vscode.Range && first.range.start.line === 1 && first.range.end.line === 1);
    return { insertText: first.insertText, start: first.range.start.character, end: first.range.end.character };
  };
  const invoked = await ask(vscode.InlineCompletionTriggerKind.Invoke);
  const automatic = await ask(vscode.InlineCompletionTriggerKind.Automatic);
  await until(() => /^unmask \d+ ms$/.test(item.text), "the latency in the status bar", 5000);
  const ready = { text: item.text, tooltip: item.tooltip };

  const [{ provider: completion }] = providers.completionItem;
  const suggest = await completion.provideCompletionItems(doc, new vscode.Position(1, 11), token, { triggerKind: 0 });

  // the light bulb: VS Code asks every code action provider for the selection, then resolves the one chosen
  const [{ provider: codeActions }] = providers.codeActions;
  const selection = new vscode.Range(4, 6, 4, 15); // "add(1, 2)"
  const invoke = { diagnostics: [], only: undefined, triggerKind: vscode.CodeActionTriggerKind.Invoke };
  const offered = await codeActions.provideCodeActions(doc, selection, invoke, token);
  const rewrite = offered.find((a) => a.kind?.value === "refactor.rewrite.unmask.rewriteSelection");
  assert.ok(rewrite && !rewrite.edit, `a rewrite to resolve: ${JSON.stringify(offered)}`);
  const resolved = await codeActions.resolveCodeAction(rewrite, token);
  const [[uri, [edit]]] = resolved.edit.entries();
  const action = { offered: offered.map((a) => [a.title, a.kind.value]), uri: uri.toString(),
    range: [edit.range.start.line, edit.range.start.character, edit.range.end.line, edit.range.end.character],
    newText: edit.newText };

  await commands.get("unmask.toggle")();
  const disabled = await inline.provideInlineCompletionItems(doc, new vscode.Position(1, 11), { triggerKind: 0 }, token);
  const offText = item.text;

  await extension.deactivate();
  console.log(JSON.stringify({ seen, invoked, automatic, ready, suggest: suggest ?? null, disabled: disabled ?? null,
    offText, enable: settings.get("unmask.enable"), messages, action }));
}

main().then(() => process.exit(0), (error) => {
  console.error(error);
  process.exit(1);
});
