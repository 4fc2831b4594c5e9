// unmask for VS Code: starts `python -m lsp_server` through vscode-languageclient and shows its
// textDocument/inlineCompletion items as ghost text; a status-bar item reports `unmask/status`.
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
} from "vscode-languageclient/node";
import { serverKeys, serverOptions } from "./options";
import { ServerStatus, statusView } from "./status";

const POLL_MS = 1000; // while the model loads

class Unmask implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private status: ServerStatus | undefined;
  private pending = 0;
  private readonly sent = new Set<string>();
  private poll: NodeJS.Timeout | undefined;
  private readonly item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  private readonly output = vscode.window.createOutputChannel("unmask", { log: true });

  constructor(private readonly keys: string[], private readonly languages: string[]) {
    this.item.command = "unmask.toggle";
    this.item.show();
    this.render();
  }

  private get config() {
    return vscode.workspace.getConfiguration("unmask");
  }

  private get enabled(): boolean {
    return this.config.get<boolean>("enable", true);
  }

  // The values the user set, at the most specific scope that has one. The server keeps options it was sent,
  // so a setting the user clears again is sent once more with its default.
  private options(): Record<string, unknown> {
    const config = this.config;
    return serverOptions(this.keys, (key) => {
      const set = config.inspect(key);
      const value = [set?.workspaceFolderValue, set?.workspaceValue, set?.globalValue].find((v) => v !== undefined);
      if (value !== undefined) {
        this.sent.add(key);
        return value;
      }
      return this.sent.has(key) ? set?.defaultValue : undefined;
    });
  }

  async start(): Promise<void> {
    const [command, ...args] = this.config.get<string[]>("serverCommand", ["python3", "-m", "lsp_server"]);
    const server: ServerOptions = { command, args }; // stdio; TransportKind.stdio would append --stdio
    const client: LanguageClientOptions = {
      documentSelector: this.languages.flatMap((language) => [
        { scheme: "file", language },
        { scheme: "untitled", language },
      ]),
      outputChannel: this.output,
      initializationOptions: this.options(),
      middleware: {
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          if (!this.enabled) {
            return null;
          }
          this.pending++;
          this.render();
          try {
            return await next(document, position, context, token);
          } finally {
            this.pending--;
            void this.refresh();
          }
        },
        // Ghost text already shows the completion; asking again for the suggest widget would run the model twice.
        provideCompletionItem: () => undefined,
      },
    };
    this.client = new LanguageClient("unmask", "unmask", server, client);
    this.status = undefined;
    this.render();
    try {
      await this.client.start();
    } catch (error) {
      this.failed(`could not start ${[command, ...args].join(" ")}: ${error}`);
      return;
    }
    this.poll = setInterval(() => void this.refresh(), POLL_MS);
    await this.refresh();
  }

  async stop(): Promise<void> {
    clearInterval(this.poll);
    await this.client?.stop().catch(() => undefined);
    this.client = undefined;
  }

  explain(why: unknown): void {
    this.output.info(`accepted: ${JSON.stringify(why)}`);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async refresh(): Promise<void> {
    if (!this.client?.isRunning()) {
      return;
    }
    try {
      this.status = await this.client.sendRequest<ServerStatus>("unmask/status", {});
    } catch (error) {
      this.output.appendLine(`unmask/status: ${error}`);
    }
    if (this.status && this.status.state !== "loading") {
      clearInterval(this.poll);
    }
    this.render();
  }

  configurationChanged(event: vscode.ConfigurationChangeEvent): void {
    if (event.affectsConfiguration("unmask.serverCommand")) {
      void this.restart();
    } else if (this.client?.isRunning() && this.keys.some((key) => event.affectsConfiguration(`unmask.${key}`))) {
      void this.client.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { unmask: this.options() },
      });
      clearInterval(this.poll); // a new model path reloads: poll until it is ready again
      this.poll = setInterval(() => void this.refresh(), POLL_MS);
    }
    this.render();
  }

  private failed(message: string): void {
    this.output.appendLine(message);
    this.item.text = "$(error) unmask";
    this.item.tooltip = message;
    void vscode.window.showErrorMessage(`unmask: ${message}`);
  }

  private render(): void {
    const view = statusView(this.status, this.enabled, this.pending > 0);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
  }

  dispose(): void {
    void this.stop();
    this.item.dispose();
    this.output.dispose();
  }
}

let unmask: Unmask | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const manifest = context.extension.packageJSON;
  const languages = (manifest.activationEvents as string[])
    .filter((event) => event.startsWith("onLanguage:"))
    .map((event) => event.slice("onLanguage:".length));
  unmask = new Unmask(serverKeys(manifest.contributes.configuration.properties), languages);
  const config = () => vscode.workspace.getConfiguration("unmask");
  context.subscriptions.push(
    unmask,
    vscode.workspace.onDidChangeConfiguration((event) => unmask?.configurationChanged(event)),
    vscode.commands.registerCommand("unmask.toggle", () =>
      config().update("enable", !config().get<boolean>("enable", true), vscode.ConfigurationTarget.Global),
    ),
    vscode.commands.registerCommand("unmask.trigger", () =>
      vscode.commands.executeCommand("editor.action.inlineSuggest.trigger"),
    ),
    vscode.commands.registerCommand("unmask.chooseModel", async () => {
      const picked = await vscode.window.showOpenDialog({
        canSelectFolders: true,
        canSelectFiles: false,
        openLabel: "Use this checkpoint",
        title: "unmask: a checkpoint folder (config.json, model.safetensors, tokenizer.json)",
      });
      if (picked?.[0]) {
        await config().update("model.path", picked[0].fsPath, vscode.ConfigurationTarget.Global);
      }
    }),
    vscode.commands.registerCommand("unmask.restart", () => unmask?.restart()),
    // run on accepting an inline item when the server's completion.explain is on: why it was shown
    vscode.commands.registerCommand("unmask.explain", (why: unknown) => unmask?.explain(why)),
  );
  await unmask.start();
}

export async function deactivate(): Promise<void> {
  await unmask?.stop();
}
