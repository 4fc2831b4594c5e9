// The part of the `vscode` API that vscode-languageclient and editors/vscode use, enough to run the real
// extension in Node: one open document, settings in a Map, providers and commands recorded for the test.
class Disposable {
  constructor(fn = () => {}) {
    this.fn = fn;
  }
  static from(...items) {
    return new Disposable(() => items.forEach((d) => d?.dispose?.()));
  }
  dispose() {
    this.fn();
  }
}

class EventEmitter {
  listeners = new Set();
  event = (listener) => {
    this.listeners.add(listener);
    return new Disposable(() => this.listeners.delete(listener));
  };
  fire(value) {
    this.listeners.forEach((listener) => listener(value));
  }
  dispose() {
    this.listeners.clear();
  }
}

const noEvent = () => new Disposable();

class Uri {
  constructor(scheme, path) {
    Object.assign(this, { scheme, path, fsPath: path });
  }
  static file(path) {
    return new Uri("file", path);
  }
  static parse(value) {
    const url = new URL(value);
    return new Uri(url.protocol.slice(0, -1), decodeURIComponent(url.pathname));
  }
  toString() {
    return this.scheme === "file" ? `file://${encodeURI(this.path)}` : `${this.scheme}:${this.path}`;
  }
  toJSON() {
    return this.toString();
  }
}

class Position {
  constructor(line, character) {
    Object.assign(this, { line, character });
  }
}

class Range {
  constructor(a, b, c, d) {
    [this.start, this.end] = typeof a === "number" ? [new Position(a, b), new Position(c, d)] : [a, b];
  }
}

class CancellationTokenSource {
  token = { isCancellationRequested: false, onCancellationRequested: noEvent };
  cancel() {
    this.token.isCancellationRequested = true;
  }
  dispose() {}
}

class InlineCompletionItem {
  constructor(insertText, range, command) {
    Object.assign(this, { insertText, range, command });
  }
}

class InlineCompletionList {
  constructor(items) {
    this.items = items;
  }
}

// Hierarchical kinds, as VS Code's: "refactor.rewrite" contains "refactor.rewrite.unmask.fillHoles".
class CodeActionKind {
  constructor(value) {
    this.value = value;
  }
  append(part) {
    return new CodeActionKind(this.value ? `${this.value}.${part}` : part);
  }
  contains(other) {
    return this.value === "" || other.value === this.value || other.value.startsWith(`${this.value}.`);
  }
  intersects(other) {
    return this.contains(other) || other.contains(this);
  }
}
for (const [name, value] of Object.entries({ Empty: "", QuickFix: "quickfix", Refactor: "refactor",
  RefactorExtract: "refactor.extract", RefactorInline: "refactor.inline", RefactorMove: "refactor.move",
  RefactorRewrite: "refactor.rewrite", Source: "source", SourceOrganizeImports: "source.organizeImports",
  SourceFixAll: "source.fixAll", Notebook: "notebook" })) {
  CodeActionKind[name] = new CodeActionKind(value);
}

class TextEdit {
  constructor(range, newText) {
    Object.assign(this, { range, newText });
  }
}

class WorkspaceEdit {
  edits = new Map(); // uri string -> TextEdit[]
  set(uri, edits) {
    this.edits.set(uri.toString(), edits.map((e) => (Array.isArray(e) ? e[0] : e))); // [edit, metadata] pairs too
  }
  entries() {
    return [...this.edits].map(([uri, edits]) => [Uri.parse(uri), edits]);
  }
}

// A read-only text document over a string, with LSP-style (UTF-16) positions.
function textDocument(path, languageId, text) {
  const lines = text.split("\n");
  const offsetAt = (p) => lines.slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
  return {
    uri: Uri.file(path),
    fileName: path,
    languageId,
    version: 1,
    isClosed: false,
    isDirty: false,
    isUntitled: false,
    eol: 1,
    lineCount: lines.length,
    getText: (range) => (range ? text.slice(offsetAt(range.start), offsetAt(range.end)) : text),
    offsetAt,
    positionAt(offset) {
      let line = 0;
      while (line < lines.length - 1 && offset > lines[line].length) {
        offset -= lines[line].length + 1;
        line++;
      }
      return new Position(line, offset);
    },
    lineAt: (line) => ({ text: lines[typeof line === "number" ? line : line.line] }),
  };
}

const settings = new Map(); // "unmask.completion.maxLines" -> value, the user's (global) settings
const providers = {}; // "inlineCompletion" -> [{ selector, provider }]
const commands = new Map();
const messages = [];
const statusItems = [];
const configurationChanged = new EventEmitter();

function configuration(section) {
  const key = (k) => (section ? `${section}.${k}` : k);
  return {
    get: (k, fallback) => (settings.has(key(k)) ? settings.get(key(k)) : fallback),
    has: (k) => settings.has(key(k)),
    inspect: (k) => ({ key: key(k), globalValue: settings.get(key(k)) }),
    async update(k, value) {
      settings.set(key(k), value);
      configurationChanged.fire({ affectsConfiguration: (s) => key(k) === s || key(k).startsWith(`${s}.`) });
    },
  };
}

function register(kind) {
  return (selector, provider) => {
    (providers[kind] ??= []).push({ selector, provider });
    return new Disposable();
  };
}

function match(selector, document) {
  const filters = Array.isArray(selector) ? selector : [selector];
  return filters.some((f) => (typeof f === "string" ? f === document.languageId
    : (!f.language || f.language === document.languageId) && (!f.scheme || f.scheme === document.uri.scheme)))
    ? 10 : 0;
}

const logChannel = (name) => ({
  name,
  logLevel: 3,
  onDidChangeLogLevel: noEvent,
  ...Object.fromEntries(["append", "appendLine", "replace", "clear", "show", "hide", "dispose", "trace", "debug",
    "info", "warn", "error"].map((m) => [m, () => {}])),
});

const languages = new Proxy({ match, createDiagnosticCollection: () => ({ set() {}, delete() {}, clear() {}, dispose() {} }) }, {
  get: (target, name) => target[name] ?? (String(name).startsWith("register")
    ? register(String(name).replace(/^register(.*)Provider$/, "$1").replace(/^./, (c) => c.toLowerCase()))
    : undefined),
});

module.exports = {
  version: "1.91.0",
  env: { language: "en", appName: "fake", openExternal: async () => true },
  Disposable, EventEmitter, Uri, Position, Range, CancellationTokenSource, InlineCompletionItem,
  InlineCompletionList, CodeActionKind, TextEdit, WorkspaceEdit,
  CodeActionTriggerKind: { Invoke: 1, Automatic: 2 },
  CancellationError: class extends Error {},
  InlineCompletionTriggerKind: { Invoke: 0, Automatic: 1 },
  LogLevel: { Off: 0, Trace: 1, Debug: 2, Info: 3, Warning: 4, Error: 5 },
  ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
  StatusBarAlignment: { Left: 1, Right: 2 },
  ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
  TabInputText: class {}, TabInputTextDiff: class {}, TabInputNotebook: class {}, TabInputCustom: class {},
  // base classes the client's own item types extend
  SymbolInformation: class {}, DocumentLink: class {}, InlayHint: class {}, Diagnostic: class {},
  CallHierarchyItem: class {}, CodeLens: class {}, CompletionItem: class {}, TypeHierarchyItem: class {},
  CodeAction: class {
    constructor(title, kind) {
      Object.assign(this, { title, kind });
    }
  },
  ...Object.fromEntries(["CompletionItemKind", "CompletionItemTag",
    "CompletionTriggerKind", "DiagnosticSeverity", "DiagnosticTag", "DocumentHighlightKind", "FoldingRangeKind",
    "SignatureHelpTriggerKind", "SymbolKind", "SymbolTag", "TextDocumentSaveReason"]
    .map((name) => [name, new Proxy({}, { get: (_, member) => `${name}.${String(member)}` })])), // unused enums
  languages,
  workspace: {
    textDocuments: [],
    notebookDocuments: [],
    workspaceFolders: undefined,
    getConfiguration: configuration,
    onDidChangeConfiguration: configurationChanged.event,
    onDidOpenTextDocument: noEvent, onDidCloseTextDocument: noEvent, onDidChangeTextDocument: noEvent,
    onWillSaveTextDocument: noEvent, onDidSaveTextDocument: noEvent, onDidChangeWorkspaceFolders: noEvent,
    createFileSystemWatcher: () => ({ onDidCreate: noEvent, onDidChange: noEvent, onDidDelete: noEvent, dispose() {} }),
    applyEdit: async () => true,
  },
  window: {
    activeTextEditor: undefined,
    visibleTextEditors: [],
    tabGroups: { all: [], onDidChangeTabs: noEvent },
    onDidChangeVisibleTextEditors: noEvent, onDidChangeActiveTextEditor: noEvent,
    createOutputChannel: logChannel,
    createStatusBarItem() {
      const item = { show() {}, hide() {}, dispose() {} };
      statusItems.push(item);
      return item;
    },
    showErrorMessage: async (m) => void messages.push(["error", m]),
    showWarningMessage: async (m) => void messages.push(["warning", m]),
    showInformationMessage: async (m) => void messages.push(["info", m]),
    withProgress: (_options, task) => task({ report() {} }, new CancellationTokenSource().token),
    showTextDocument: async () => undefined,
  },
  commands: {
    registerCommand(name, fn) {
      commands.set(name, fn);
      return new Disposable(() => commands.delete(name));
    },
    executeCommand: async (name, ...args) => commands.get(name)?.(...args),
  },
  fake: { textDocument, settings, providers, commands, messages, statusItems },
};
