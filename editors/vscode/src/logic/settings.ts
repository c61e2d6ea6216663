// Settings → how to start berth and what to send in initialize.

export interface BerthSettings {
  path?: string;
  backend?: string;
  image?: string;
  tcp?: string;
}

export interface InitializationOptions {
  backend?: string;
  image?: string;
  /** VS Code trusts the workspace: berth lets its configuration run hooks and mount host paths without asking. */
  trust?: boolean;
}

/**
 * initializationOptions for initialize: only the settings that are set,
 * and trust when VS Code trusts the workspace (vscode.workspace.isTrusted).
 * Untrusted, berth asks with window/showMessageRequest before a
 * configuration runs anything.
 */
export function initializationOptions(s: BerthSettings, trusted = false): InitializationOptions {
  const out: InitializationOptions = {};
  const backend = (s.backend ?? '').trim();
  const image = (s.image ?? '').trim();
  if (backend !== '') out.backend = backend;
  if (image !== '') out.image = image;
  if (trusted) out.trust = true;
  return out;
}

export interface ServerCommand {
  command: string;
  args: string[];
}

/** The command line that starts berth over stdio. */
export function serverCommand(s: BerthSettings): ServerCommand {
  const command = (s.path ?? '').trim() || 'berth';
  return { command, args: ['--stdio'] };
}

export interface TcpAddress {
  host: string;
  port: number;
}

/**
 * Parses the berth.tcp setting: "HOST:PORT", "[v6]:PORT", ":PORT" or
 * "PORT" (host 127.0.0.1). Returns undefined when the setting is empty,
 * and throws on a malformed address.
 */
export function parseTcpAddress(addr: string | undefined): TcpAddress | undefined {
  const a = (addr ?? '').trim().replace(/^tcp:\/\//, '');
  if (a === '') return undefined;
  let host = '127.0.0.1';
  let portText = a;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(a);
  if (v6) {
    host = v6[1];
    portText = v6[2];
  } else if (a.includes(':')) {
    const i = a.lastIndexOf(':');
    host = a.slice(0, i) || '127.0.0.1';
    portText = a.slice(i + 1);
  }
  if (!/^\d+$/.test(portText)) {
    throw new Error(`berth.tcp: "${addr}" is not HOST:PORT`);
  }
  const port = Number(portText);
  if (port < 1 || port > 65535) {
    throw new Error(`berth.tcp: port ${port} out of range 1-65535`);
  }
  return { host, port };
}

/** The settings whose change needs berth restarted. */
export const restartSettings = ['berth.path', 'berth.backend', 'berth.image', 'berth.tcp'];
