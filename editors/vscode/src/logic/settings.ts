// Settings → how to start berth and what to send in initialize.

import * as fs from 'fs';
import * as path from 'path';

export interface BerthSettings {
  path?: string;
  backend?: string;
  image?: string;
  tcp?: string;
  tokenFile?: string;
}

export interface InitializationOptions {
  backend?: string;
  image?: string;
  token?: string;
  /** VS Code trusts the workspace: berth lets its configuration run hooks and mount host paths without asking. */
  trust?: boolean;
}

/**
 * initializationOptions for initialize: only the settings that are set,
 * the token of a `berth --tcp` when attaching to one, and trust when VS
 * Code trusts the workspace (vscode.workspace.isTrusted). Untrusted, berth
 * asks with window/showMessageRequest before a configuration runs anything.
 */
export function initializationOptions(s: BerthSettings, token?: string, trusted = false): InitializationOptions {
  const out: InitializationOptions = {};
  if (token) out.token = token;
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

/**
 * The command line of the "berth" terminal profile: `berth shell` on the
 * folder, with the settings that choose its container. VS Code gives it a
 * real terminal, whose size and resizes berth passes on.
 */
export function shellCommand(s: BerthSettings, folder: string, trusted = false): ServerCommand {
  const command = (s.path ?? '').trim() || 'berth';
  const args = ['--workspace', folder];
  const backend = (s.backend ?? '').trim();
  const image = (s.image ?? '').trim();
  if (backend !== '') args.push('--backend', backend);
  if (image !== '') args.push('--image', image);
  if (trusted) args.push('--trust');
  args.push('shell');
  return { command, args };
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

/** Where berth.tcp attaches: a unix socket, or a TCP address. */
export type AttachAddress = { kind: 'unix'; path: string } | ({ kind: 'tcp' } & TcpAddress);

/**
 * Parses the berth.tcp setting: "unix:PATH" (a `berth --listen` socket),
 * or a TCP address as parseTcpAddress takes it, optionally "tcp:"-prefixed.
 * Returns undefined when the setting is empty.
 */
export function parseAttachAddress(addr: string | undefined): AttachAddress | undefined {
  const a = (addr ?? '').trim();
  if (a.startsWith('unix:')) {
    const p = a.slice('unix:'.length);
    if (p === '') throw new Error(`berth.tcp: "${addr}" is not unix:PATH`);
    return { kind: 'unix', path: p };
  }
  const tcp = parseTcpAddress(a.replace(/^tcp:(?!\/\/)/, ''));
  return tcp && { kind: 'tcp', ...tcp };
}

/** The platform facts defaultTokenPath needs. */
export interface TokenEnv {
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
  home: string;
}

/**
 * The token file `berth --tcp` writes for port (docs/protocol.md, Attach
 * modes): $XDG_RUNTIME_DIR/berth/tcp-PORT.token, else berth/run in the
 * user's cache directory, as Go's os.UserCacheDir finds it.
 */
export function defaultTokenPath(port: number, t: TokenEnv): string {
  const name = `tcp-${port}.token`;
  const rt = t.env.XDG_RUNTIME_DIR;
  if (rt) return path.join(rt, 'berth', name);
  let cache: string;
  if (t.platform === 'darwin') cache = path.join(t.home, 'Library', 'Caches');
  else if (t.platform === 'win32') cache = t.env.LocalAppData ?? t.env.LOCALAPPDATA ?? path.join(t.home, 'AppData', 'Local');
  else cache = t.env.XDG_CACHE_HOME || path.join(t.home, '.cache');
  return path.join(cache, 'berth', 'run', name);
}

/**
 * The token for a `berth --tcp` on port, as `berth connect` finds it: the
 * berth.tokenFile setting, else $BERTH_TOKEN, else the default token file.
 */
export async function resolveToken(tokenFile: string | undefined, port: number, t: TokenEnv): Promise<string> {
  const file = (tokenFile ?? '').trim();
  if (file === '' && t.env.BERTH_TOKEN) return t.env.BERTH_TOKEN.trim();
  const p = file || defaultTokenPath(port, t);
  let text: string;
  try {
    text = await fs.promises.readFile(p, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new Error(`berth.tcp: no token: ${p} does not exist (is berth --tcp running on port ${port} as you?); set berth.tokenFile`);
    }
    throw new Error(`berth.tcp: reading the token: ${(e as Error).message}`);
  }
  const token = text.trim();
  if (token === '') throw new Error(`berth.tcp: the token file ${p} is empty`);
  return token;
}

/** The settings whose change needs berth restarted. */
export const restartSettings = ['berth.path', 'berth.backend', 'berth.image', 'berth.tcp', 'berth.tokenFile'];
