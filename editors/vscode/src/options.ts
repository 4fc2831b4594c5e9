// Server options as lsp_server/options.py reads them: nested camelCase objects holding only the values the
// user set, so the server's own defaults (and its validation messages) apply to everything else.

// Settings the extension itself reads; every other "unmask.*" setting is a server option.
export const CLIENT_SETTINGS = new Set(["unmask.enable", "unmask.serverCommand"]);

// "unmask.completion.maxLines" -> "completion.maxLines", for the server options among contributed settings.
export function serverKeys(properties: Record<string, unknown>): string[] {
  return Object.keys(properties)
    .filter((key) => key.startsWith("unmask.") && !CLIENT_SETTINGS.has(key))
    .map((key) => key.slice("unmask.".length));
}

// get(key) is the user's value for a key, or undefined when the user left it unset.
export function serverOptions(keys: string[], get: (key: string) => unknown): Record<string, unknown> {
  const options: Record<string, any> = {};
  for (const key of keys) {
    const value = get(key);
    if (value === undefined) {
      continue;
    }
    const path = key.split(".");
    let node = options;
    for (const part of path.slice(0, -1)) {
      node = node[part] ??= {};
    }
    node[path[path.length - 1]] = value;
  }
  return options;
}
