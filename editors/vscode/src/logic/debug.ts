// Launch configurations ↔ berth/debug.
//
// A "berth" launch configuration names what to debug; the extension calls
// berth/debug with buildDebugParams(config), and VS Code talks DAP straight
// to the debug server through berth's tunnel. resolvedSessionConfig() turns
// berth's `attach` into the configuration VS Code sends as the DAP
// launch/attach request (pathMappings and so on).

import type { DebugParams, DebugResult } from './wire';
import { splitCommandLine } from './cmdline';

export const DEBUG_TYPE = 'berth';

/** Fields of a `"type": "berth"` launch configuration. */
export interface BerthLaunchConfig {
  type?: string;
  request?: string;
  name?: string;
  adapter?: string;
  program?: string;
  module?: string;
  args?: string[] | string;
  cwd?: string;
  env?: Record<string, string | number | boolean | null>;
  justMyCode?: boolean;
  stopOnEntry?: boolean;
  command?: string[] | string;
  port?: number;
  connectBack?: number | { hostPort: number };
  workspace?: string;
  /** Debug tests (pytest under debugpy, dlv test) rather than a program. */
  test?: boolean;
  tests?: string[];
  [key: string]: unknown;
}

/** Where the extension keeps berth/debug's answer in the session's configuration. */
export const SESSION_KEY = '__berth';

export interface SessionInfo {
  pid: string;
  tunnelId: string;
  host?: string;
  port?: number;
  adapter: string;
}

export class DebugConfigError extends Error {}

/** The adapter to use: the configured one, else by the program's kind. */
export function pickAdapter(c: BerthLaunchConfig): string {
  if (c.adapter) return c.adapter;
  if (c.command) return 'custom';
  if (c.program && /\.go$/.test(c.program)) return 'delve';
  return 'debugpy';
}

function toArgs(v: string[] | string | undefined, field: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return splitCommandLine(v);
  if (!Array.isArray(v) || v.some((a) => typeof a !== 'string')) {
    throw new DebugConfigError(`${field} must be an array of strings`);
  }
  return v;
}

/** berth/debug's params from a launch configuration (variables already substituted). */
export function buildDebugParams(c: BerthLaunchConfig, workspace?: string): DebugParams {
  const adapter = pickAdapter(c);
  if (!['debugpy', 'delve', 'custom'].includes(adapter)) {
    throw new DebugConfigError(`adapter must be debugpy, delve or custom, not "${adapter}"`);
  }
  const p: DebugParams = { adapter };
  const ws = c.workspace ?? workspace;
  if (ws) p.workspace = ws;
  if (c.program) p.program = c.program;
  if (c.module) p.module = c.module;
  if (p.program && p.module) throw new DebugConfigError('give either program or module, not both');
  if (c.test) {
    if (adapter === 'custom') throw new DebugConfigError('test: true needs debugpy or delve');
    p.test = true;
    if (Array.isArray(c.tests) && c.tests.length) p.tests = c.tests.map(String);
  }
  if (adapter === 'debugpy' && !p.program && !p.module && !p.test) {
    throw new DebugConfigError('debugpy needs a program or a module');
  }
  const args = toArgs(c.args, 'args');
  if (args && args.length) p.args = args;
  if (c.cwd) p.cwd = c.cwd;
  if (c.env && typeof c.env === 'object') {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(c.env)) {
      if (v === null || v === undefined) continue;
      env[k] = String(v);
    }
    if (Object.keys(env).length) p.env = env;
  }
  if (c.stopOnEntry !== undefined) p.stopOnEntry = !!c.stopOnEntry;
  if (c.justMyCode !== undefined) p.justMyCode = !!c.justMyCode;
  if (adapter === 'custom') {
    const cmd = toArgs(c.command, 'command');
    if (!cmd || cmd.length === 0) throw new DebugConfigError('adapter "custom" needs a command');
    p.command = cmd;
  }
  if (c.port !== undefined && c.port !== null) {
    if (!Number.isInteger(c.port) || c.port < 1 || c.port > 65535) {
      throw new DebugConfigError(`port must be 1-65535, not ${c.port}`);
    }
    p.port = c.port;
  }
  if (c.connectBack !== undefined && c.connectBack !== null) {
    const hp = typeof c.connectBack === 'number' ? c.connectBack : c.connectBack.hostPort;
    if (!Number.isInteger(hp) || hp < 1 || hp > 65535) {
      throw new DebugConfigError(`connectBack.hostPort must be 1-65535, not ${hp}`);
    }
    p.connectBack = { hostPort: hp };
  }
  return p;
}

// Keys of berth's attach that describe the connection, not the DAP request.
const CONNECTION_KEYS = ['type', 'name', 'connect', 'listen', 'host', 'port'];
// Keys of a berth launch configuration that only berth/debug reads.
const BERTH_KEYS = ['adapter', 'program', 'module', 'args', 'cwd', 'env', 'command', 'port', 'connectBack', 'workspace', 'test', 'tests'];

/**
 * The configuration VS Code sends to the debug server: berth's `attach`
 * (its request, pathMappings, justMyCode, …) under the user's name and
 * type "berth", plus SESSION_KEY for the adapter factory. For a delve
 * launch (a `dlv dap` server) the user's args and env go along.
 */
export function resolvedSessionConfig(c: BerthLaunchConfig, res: DebugResult, adapter: string): Record<string, unknown> {
  if (!res.attach) {
    throw new DebugConfigError('berth/debug returned no attach configuration (connectBack sessions have none)');
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c)) {
    if (!BERTH_KEYS.includes(k)) out[k] = v;
  }
  for (const [k, v] of Object.entries(res.attach)) {
    if (!CONNECTION_KEYS.includes(k)) out[k] = v;
  }
  out.type = DEBUG_TYPE;
  out.name = c.name || (res.attach.name as string) || 'berth';
  out.request = (res.attach.request as string) || 'attach';
  if (out.request === 'launch') {
    const args = toArgs(c.args, 'args');
    if (args && args.length) out.args = args;
    if (c.env) out.env = c.env;
  }
  const info: SessionInfo = { pid: res.pid, tunnelId: res.tunnelId, host: res.host, port: res.port, adapter };
  out[SESSION_KEY] = info;
  return out;
}

/** Host and port of the tunnel to the debug server. */
export function serverAddress(res: Pick<DebugResult, 'host' | 'port'>): { host: string; port: number } {
  if (!res.port) throw new DebugConfigError('berth/debug returned no port');
  return { host: res.host || '127.0.0.1', port: res.port };
}

/**
 * A debugpy attach configuration (for the Python extension) from
 * berth/debug's result: its `attach` with `connect` to the tunnel.
 */
export function debugpyAttachConfig(res: DebugResult, name?: string): Record<string, unknown> {
  const addr = serverAddress(res);
  const attach = res.attach ?? {};
  const out: Record<string, unknown> = { ...attach };
  out.type = 'debugpy';
  out.request = 'attach';
  out.name = name || (attach.name as string) || 'berth: attach';
  out.connect = { host: addr.host, port: addr.port };
  delete out.listen;
  if (!Array.isArray(out.pathMappings)) out.pathMappings = [];
  return out;
}

/**
 * Fills a debugpy configuration that carries a "berth" object (what to
 * start) with `connect` and `pathMappings` from berth/debug's result; the
 * user's own pathMappings and justMyCode win.
 */
export function fillDebugpyConfig(c: Record<string, unknown>, res: DebugResult): Record<string, unknown> {
  const filled = debugpyAttachConfig(res, c.name as string | undefined);
  const out: Record<string, unknown> = { ...filled, ...c };
  delete out.berth;
  out.type = 'debugpy';
  out.request = 'attach';
  out.connect = filled.connect;
  if (!Array.isArray(c.pathMappings) || (c.pathMappings as unknown[]).length === 0) out.pathMappings = filled.pathMappings;
  out[SESSION_KEY] = { pid: res.pid, tunnelId: res.tunnelId, host: res.host, port: res.port, adapter: 'debugpy' } as SessionInfo;
  return out;
}

/** berth/debug params from a debugpy configuration's "berth" object (true: the current file). */
export function debugpyBerthParams(berth: unknown, currentFile?: string, workspace?: string): DebugParams {
  let c: BerthLaunchConfig;
  if (berth === true) {
    c = { program: currentFile };
  } else if (berth && typeof berth === 'object') {
    c = { ...(berth as BerthLaunchConfig) };
  } else {
    throw new DebugConfigError('"berth" must be true or an object with program or module');
  }
  c.adapter = 'debugpy';
  return buildDebugParams(c, workspace);
}

/** A launch configuration for F5 without a launch.json, by the active file's language. */
export function defaultLaunchConfig(languageId: string | undefined, file: string | undefined): BerthLaunchConfig | undefined {
  if (!file) return undefined;
  if (languageId === 'python' || /\.py$/.test(file)) {
    return { type: DEBUG_TYPE, request: 'launch', name: 'berth: current file', adapter: 'debugpy', program: file };
  }
  if (languageId === 'go' || /\.go$/.test(file)) {
    const dir = file.replace(/[\\/][^\\/]*$/, '');
    return { type: DEBUG_TYPE, request: 'launch', name: 'berth: package', adapter: 'delve', cwd: dir };
  }
  return undefined;
}

/**
 * berth/debug params from a Go (delve) configuration's "berth" object:
 * true debugs the current file's package; an object names a program (a
 * package directory), or tests with test: true.
 */
export function delveBerthParams(berth: unknown, currentFile?: string, workspace?: string): DebugParams {
  let c: BerthLaunchConfig;
  if (berth === true) {
    if (!currentFile) throw new DebugConfigError('"berth": true debugs the current file\'s package: open a Go file');
    c = { program: currentFile.replace(/[\\/][^\\/]*$/, '') };
  } else if (berth && typeof berth === 'object') {
    c = { ...(berth as BerthLaunchConfig) };
  } else {
    throw new DebugConfigError('"berth" must be true or an object with program, or test and tests');
  }
  c.adapter = 'delve';
  if (!c.program && !c.test) {
    throw new DebugConfigError('a delve attach needs a program (a package directory) or test: true; without them delve serves launch requests only');
  }
  return buildDebugParams(c, workspace);
}

/**
 * Fills a Go extension attach configuration that carries "berth" with
 * berth/debug's result: remote mode at the tunnel, substitutePath from the
 * mounts (the user's own wins).
 */
export function fillDelveConfig(c: Record<string, unknown>, res: DebugResult): Record<string, unknown> {
  const addr = serverAddress(res);
  const attach = res.attach ?? {};
  const out: Record<string, unknown> = { ...attach, ...c };
  delete out.berth;
  out.type = 'go';
  out.request = 'attach';
  out.mode = 'remote';
  out.host = addr.host;
  out.port = addr.port;
  out.name = (c.name as string) || (attach.name as string) || 'berth: attach';
  if (!Array.isArray(c.substitutePath) || (c.substitutePath as unknown[]).length === 0) out.substitutePath = attach.substitutePath ?? [];
  out[SESSION_KEY] = { pid: res.pid, tunnelId: res.tunnelId, host: res.host, port: res.port, adapter: 'delve' } as SessionInfo;
  return out;
}
