// The status-bar item's text and tooltip from an `unmask/status` reply.

export interface ServerStatus {
  model: string | null;
  family: string | null;
  device: string | null;
  dtype: string | null;
  state: "loading" | "ready" | "failed";
  error: string | null;
  latencies_ms: { p50: number | null; p95: number | null; count: number };
}

export interface StatusView {
  text: string;
  tooltip: string;
}

function ms(value: number | null): string {
  return value === null ? "-" : `${Math.round(value)} ms`;
}

// pending: a completion request is on its way; enabled: ghost text is on.
export function statusView(status: ServerStatus | undefined, enabled: boolean, pending: boolean): StatusView {
  const toggle = `Click to turn ghost text ${enabled ? "off" : "on"}`;
  if (!status) {
    return { text: "$(loading~spin) unmask", tooltip: `unmask: starting the server\n${toggle}` };
  }
  const model = [status.model ?? "embedded model", status.family, status.device, status.dtype]
    .filter((part) => part)
    .join(" · ");
  if (status.state === "failed") {
    return { text: "$(error) unmask", tooltip: `unmask: ${model} failed to load\n${status.error ?? ""}`.trim() };
  }
  if (status.state === "loading") {
    return { text: "$(loading~spin) unmask: loading", tooltip: `unmask: loading ${model}\n${toggle}` };
  }
  const { p50, p95, count } = status.latencies_ms;
  const icon = !enabled ? "$(circle-slash) " : pending ? "$(sync~spin) " : "";
  const latency = count ? ` ${ms(p50)}` : "";
  const tooltip = [
    `unmask: ${model}`,
    count ? `latency p50 ${ms(p50)}, p95 ${ms(p95)} over ${count} completion${count === 1 ? "" : "s"}` : "no completions yet",
    toggle,
  ].join("\n");
  return { text: `${icon}unmask${latency}`, tooltip };
}
