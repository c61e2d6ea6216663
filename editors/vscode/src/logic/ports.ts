// The Ports view's model, without VS Code: berth/ports and
// berth/portsChanged into rows, auto-forward notifications as
// portsAttributes' onAutoForward says, and window/showDocument.

import type { ForwardResult, Port, PortsChangedParams, PortsResult, ShowDocumentParams, TunnelInfo } from './wire';
import type { Requester } from './testSession';

export interface PortRow {
  /** Stable across refreshes: "port:8000" or "tunnel:t3". */
  key: string;
  label: string;
  description: string;
  tooltip: string;
  containerPort: number;
  /** The forward's host end, when forwarded. */
  host?: string;
  hostPort?: number;
  tunnelId?: string;
  auto?: boolean;
  /** For menus: "forwarded" (open, stop) or "detected" (forward). */
  state: 'forwarded' | 'detected';
}

/** The URL of a forwarded port on the host. */
export function portUrl(host: string | undefined, hostPort: number): string {
  const h = !host || host === '127.0.0.1' || host === '0.0.0.0' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  return `http://${h}:${hostPort}`;
}

/**
 * One row per detected port (with its forward, if any), then one per
 * forward of a port not detected (a manual forward to a port that does
 * not listen, or to another host of the container's).
 */
export function portRows(ports: Port[] | null, forwards: TunnelInfo[] | null): PortRow[] {
  const rows: PortRow[] = [];
  const fwds = (forwards ?? []).filter((f) => f.direction === 'forward' && f.hostPort);
  const used = new Set<string>();
  const sorted = [...(ports ?? [])].sort((a, b) => a.port - b.port);
  for (const p of sorted) {
    const f = fwds.find((t) => (p.tunnelId ? t.tunnelId === p.tunnelId : false)) ??
      fwds.find((t) => !used.has(t.tunnelId) && t.containerPort === p.port);
    const hostPort = f?.hostPort ?? p.hostPort;
    const label = p.label ? `${p.label} (${p.port})` : String(p.port);
    const proc = p.process ? `${p.process.name} (pid ${p.process.pid})` : '';
    const row: PortRow = {
      key: `port:${p.port}`,
      label,
      containerPort: p.port,
      description: '',
      tooltip: '',
      state: hostPort ? 'forwarded' : 'detected',
    };
    if (f) used.add(f.tunnelId);
    if (hostPort) {
      row.host = f?.host ?? '127.0.0.1';
      row.hostPort = hostPort;
      row.tunnelId = f?.tunnelId ?? p.tunnelId;
      row.auto = f ? !!f.auto : !!p.tunnelId;
    }
    row.description = [hostPort ? `→ ${portUrl(row.host, hostPort)}` : 'not forwarded', proc].filter((s) => s).join('  ');
    row.tooltip = [
      `Container port ${p.port} on ${p.bindAddress}`,
      proc && `Process: ${proc}`,
      hostPort ? `Forwarded to ${row.host}:${hostPort}${row.auto ? ' (auto)' : ''}` : 'Not forwarded',
      `onAutoForward: ${p.onAutoForward}`,
    ].filter((s) => s).join('\n');
    rows.push(row);
  }
  for (const f of fwds) {
    if (used.has(f.tunnelId)) continue;
    rows.push({
      key: `tunnel:${f.tunnelId}`,
      label: f.containerHost && f.containerHost !== '127.0.0.1' && f.containerHost !== 'localhost' ? `${f.containerHost}:${f.containerPort}` : String(f.containerPort),
      containerPort: f.containerPort,
      description: `→ ${portUrl(f.host, f.hostPort!)}  not listening`,
      tooltip: `Forward ${f.tunnelId}: ${f.host ?? '127.0.0.1'}:${f.hostPort} → ${f.containerHost}:${f.containerPort}`,
      host: f.host ?? '127.0.0.1',
      hostPort: f.hostPort,
      tunnelId: f.tunnelId,
      auto: !!f.auto,
      state: 'forwarded',
    });
  }
  return rows;
}

export type AutoForwardAction =
  | { kind: 'notify'; port: Port; url: string }
  | { kind: 'openBrowser'; port: Port; url: string }
  | { kind: 'openPreview'; port: Port; url: string };

/**
 * Turns port lists into what the editor does about auto-forwards: each
 * port that newly has a forward (a new tunnelId) acts once, by its
 * onAutoForward. openBrowserOnce opens a port's first forward only, for
 * as long as this tracker lives (a window). silent and ignore do nothing.
 */
export class AutoForwardTracker {
  private seen = new Map<string, Set<string>>(); // workspace → "port/tunnelId"
  private openedOnce = new Set<string>(); // workspace + port

  changes(p: PortsChangedParams): AutoForwardAction[] {
    const before = this.seen.get(p.workspace) ?? new Set<string>();
    const now = new Set<string>();
    const out: AutoForwardAction[] = [];
    for (const port of p.ports ?? []) {
      if (!port.tunnelId || !port.hostPort) continue;
      const key = `${port.port}/${port.tunnelId}`;
      now.add(key);
      if (before.has(key)) continue;
      const url = portUrl('127.0.0.1', port.hostPort);
      switch (port.onAutoForward) {
        case 'notify':
          out.push({ kind: 'notify', port, url });
          break;
        case 'openBrowser':
          out.push({ kind: 'openBrowser', port, url });
          break;
        case 'openBrowserOnce': {
          const once = `${p.workspace}\0${port.port}`;
          if (!this.openedOnce.has(once)) {
            this.openedOnce.add(once);
            out.push({ kind: 'openBrowser', port, url });
          }
          break;
        }
        case 'openPreview':
          out.push({ kind: 'openPreview', port, url });
          break;
      }
    }
    this.seen.set(p.workspace, now);
    return out;
  }
}

/** The message an auto-forward notification shows. */
export function notifyText(a: AutoForwardAction): string {
  const what = a.port.label ? `${a.port.label} (port ${a.port.port})` : `Port ${a.port.port}`;
  const proc = a.port.process ? ` by ${a.port.process.name}` : '';
  return `berth: ${what}, listened on${proc} in the container, is forwarded to ${a.url}`;
}

/**
 * What to do with berth's window/showDocument: an external http(s) URI is
 * opened with the host's browser; anything else external is refused (berth
 * sends only http and https); a document is left to the language client.
 */
export function showDocumentAction(p: ShowDocumentParams): 'openExternal' | 'refuse' | 'default' {
  if (!p.external) return 'default';
  return /^https?:\/\//i.test(p.uri) ? 'openExternal' : 'refuse';
}

/** The Ports view's data for one workspace: berth/ports, refreshed on berth/portsChanged. */
export class PortsModel {
  rows: PortRow[] = [];
  ports: Port[] = [];
  forwards: TunnelInfo[] = [];

  constructor(private readonly berth: Requester, private readonly workspace?: string) {}

  private params(): object {
    return this.workspace ? { workspace: this.workspace } : {};
  }

  async refresh(): Promise<PortRow[]> {
    const res = await this.berth.request<PortsResult>('berth/ports', this.params());
    this.ports = res.ports ?? [];
    this.forwards = res.forwards ?? [];
    this.rows = portRows(this.ports, this.forwards);
    return this.rows;
  }

  /** Forwards a container port (hostPort 0: the same port when free, else any). */
  async forward(containerPort: number, hostPort?: number): Promise<ForwardResult> {
    const res = await this.berth.request<ForwardResult>('berth/forward', { ...this.params(), containerPort, ...(hostPort ? { hostPort } : {}) });
    await this.refresh();
    return res;
  }

  /** Stops forwarding: an auto-forward's port is not auto-forwarded again until it listens anew. */
  async stop(tunnelId: string): Promise<void> {
    await this.berth.request('berth/closeTunnel', { tunnelId });
    await this.refresh();
  }
}
