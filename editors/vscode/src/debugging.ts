// Debugging through berth/debug: a "berth" debug type whose adapter is the
// debug server in the container (reached through berth's tunnel), and a
// provider that fills debugpy attach configurations that carry "berth".

import * as vscode from 'vscode';
import { Berth, errorMessage, workspaceParam } from './berth';
import {
  BerthLaunchConfig,
  DEBUG_TYPE,
  SESSION_KEY,
  SessionInfo,
  buildDebugParams,
  debugpyAttachConfig,
  debugpyBerthParams,
  defaultLaunchConfig,
  delveBerthParams,
  fillDebugpyConfig,
  fillDelveConfig,
  pickAdapter,
  resolvedSessionConfig,
  serverAddress,
} from './logic/debug';
import { splitCommandLine } from './logic/cmdline';
import type { DebugResult } from './logic/wire';

async function startDebugServer(berth: Berth, params: object): Promise<DebugResult> {
  return berth.requestWithProgress<DebugResult>('berth: starting the debug server', 'berth/debug', params);
}

class BerthConfigurationProvider implements vscode.DebugConfigurationProvider {
  constructor(private readonly berth: Berth) {}

  provideDebugConfigurations(): vscode.DebugConfiguration[] {
    return [
      { type: DEBUG_TYPE, request: 'launch', name: 'berth: Python file', adapter: 'debugpy', program: '${file}' },
      { type: DEBUG_TYPE, request: 'launch', name: 'berth: Go package', adapter: 'delve', cwd: '${fileDirname}' },
    ];
  }

  resolveDebugConfiguration(folder: vscode.WorkspaceFolder | undefined, config: vscode.DebugConfiguration): vscode.DebugConfiguration | undefined {
    if (!config.type && !config.request && !config.name) {
      // F5 without a launch.json.
      const ed = vscode.window.activeTextEditor;
      const def = defaultLaunchConfig(ed?.document.languageId, ed?.document.uri.fsPath);
      if (!def) {
        void vscode.window.showInformationMessage('berth: open a Python or Go file, or add a "berth" configuration to launch.json.');
        return undefined;
      }
      return def as vscode.DebugConfiguration;
    }
    return config;
  }

  async resolveDebugConfigurationWithSubstitutedVariables(
    folder: vscode.WorkspaceFolder | undefined,
    config: vscode.DebugConfiguration,
  ): Promise<vscode.DebugConfiguration | undefined> {
    if (config[SESSION_KEY]) return config;
    try {
      const c = config as BerthLaunchConfig;
      const params = buildDebugParams(c, workspaceParam(folder).workspace);
      const res = await startDebugServer(this.berth, params);
      if (!res.attach) {
        const cb = res.connectBack;
        void vscode.window.showInformationMessage(
          `berth: the debuggee (${res.pid}) connects back to your debug server on host port ${params.connectBack?.hostPort}` +
            (cb ? ` (in the container: ${cb.containerHost}:${cb.containerPort})` : '') + '.',
        );
        return undefined;
      }
      return resolvedSessionConfig(c, res, pickAdapter(c)) as vscode.DebugConfiguration;
    } catch (e) {
      void vscode.window.showErrorMessage(`berth: debug: ${errorMessage(e)}`);
      return undefined;
    }
  }
}

class BerthAdapterFactory implements vscode.DebugAdapterDescriptorFactory {
  constructor(private readonly berth: Berth) {}

  async createDebugAdapterDescriptor(session: vscode.DebugSession): Promise<vscode.DebugAdapterDescriptor> {
    let info = session.configuration[SESSION_KEY] as SessionInfo | undefined;
    if (!info) {
      // Not resolved by our provider (e.g. started from an extension's API).
      const params = buildDebugParams(session.configuration as BerthLaunchConfig, workspaceParam(session.workspaceFolder).workspace);
      const res = await startDebugServer(this.berth, params);
      info = { pid: res.pid, tunnelId: res.tunnelId, host: res.host, port: res.port, adapter: params.adapter };
    }
    const addr = serverAddress(info);
    return new vscode.DebugAdapterServer(addr.port, addr.host);
  }
}

class DebugpyBerthProvider implements vscode.DebugConfigurationProvider {
  constructor(private readonly berth: Berth) {}

  async resolveDebugConfigurationWithSubstitutedVariables(
    folder: vscode.WorkspaceFolder | undefined,
    config: vscode.DebugConfiguration,
  ): Promise<vscode.DebugConfiguration | undefined> {
    if (config.berth === undefined || config[SESSION_KEY]) return config;
    try {
      const params = debugpyBerthParams(config.berth, vscode.window.activeTextEditor?.document.uri.fsPath, workspaceParam(folder).workspace);
      const res = await startDebugServer(this.berth, params);
      return fillDebugpyConfig(config, res) as vscode.DebugConfiguration;
    } catch (e) {
      void vscode.window.showErrorMessage(`berth: debug: ${errorMessage(e)}`);
      return undefined;
    }
  }
}

/**
 * Go extension attach configurations that carry "berth": berth starts a
 * headless delve (dlv debug of a package, or dlv test with test: true) and
 * the Go extension attaches to it remotely through the tunnel.
 */
class DelveBerthProvider implements vscode.DebugConfigurationProvider {
  constructor(private readonly berth: Berth) {}

  async resolveDebugConfigurationWithSubstitutedVariables(
    folder: vscode.WorkspaceFolder | undefined,
    config: vscode.DebugConfiguration,
  ): Promise<vscode.DebugConfiguration | undefined> {
    if (config.berth === undefined || config[SESSION_KEY]) return config;
    try {
      const params = delveBerthParams(config.berth, vscode.window.activeTextEditor?.document.uri.fsPath, workspaceParam(folder).workspace);
      const res = await startDebugServer(this.berth, params);
      return fillDelveConfig(config, res) as vscode.DebugConfiguration;
    } catch (e) {
      void vscode.window.showErrorMessage(`berth: debug: ${errorMessage(e)}`);
      return undefined;
    }
  }
}

/** "berth: Attach Debugger in Container": berth/debug with debugpy, then a debugpy attach session. */
export async function attachDebugger(berth: Berth): Promise<void> {
  const ed = vscode.window.activeTextEditor;
  const folder = ed ? vscode.workspace.getWorkspaceFolder(ed.document.uri) : vscode.workspace.workspaceFolders?.[0];
  if (ed && ed.document.languageId === 'go') {
    // delve: dlv debug of this file's package, attached by the Go extension.
    try {
      const res = await startDebugServer(berth, delveBerthParams(true, ed.document.uri.fsPath, workspaceParam(folder).workspace));
      const ok = await vscode.debug.startDebugging(folder, fillDelveConfig({ name: 'berth: attach (delve)' }, res) as vscode.DebugConfiguration);
      if (!ok) {
        void vscode.window.showWarningMessage(`berth: could not start a Go debug session (is the Go extension installed?). Attach to 127.0.0.1:${res.port} by hand.`);
      }
    } catch (e) {
      void vscode.window.showErrorMessage(`berth: attach: ${errorMessage(e)}`);
    }
    return;
  }
  const program = await vscode.window.showInputBox({
    title: 'berth: Attach Debugger in Container',
    prompt: 'Python program (a host path) or -m MODULE, and its arguments',
    value: ed && ed.document.languageId === 'python' ? ed.document.uri.fsPath : '',
  });
  if (!program) return;
  let words: string[];
  try {
    words = splitCommandLine(program);
  } catch (e) {
    void vscode.window.showErrorMessage(`berth: ${errorMessage(e)}`);
    return;
  }
  const c: BerthLaunchConfig = { adapter: 'debugpy' };
  if (words[0] === '-m') {
    c.module = words[1];
    c.args = words.slice(2);
  } else {
    c.program = words[0];
    c.args = words.slice(1);
  }
  try {
    const params = buildDebugParams(c, workspaceParam(folder).workspace);
    const res = await startDebugServer(berth, params);
    const cfg = debugpyAttachConfig(res);
    cfg[SESSION_KEY] = { pid: res.pid, tunnelId: res.tunnelId, host: res.host, port: res.port, adapter: 'debugpy' } as SessionInfo;
    const ok = await vscode.debug.startDebugging(folder, cfg as vscode.DebugConfiguration);
    if (!ok) {
      void vscode.window.showWarningMessage(
        `berth: could not start a debugpy session (is the Python Debugger extension installed?). Attach to 127.0.0.1:${res.port} by hand.`,
      );
    }
  } catch (e) {
    void vscode.window.showErrorMessage(`berth: attach: ${errorMessage(e)}`);
  }
}

export function registerDebugging(berth: Berth): vscode.Disposable[] {
  return [
    vscode.debug.registerDebugConfigurationProvider(DEBUG_TYPE, new BerthConfigurationProvider(berth)),
    vscode.debug.registerDebugConfigurationProvider(DEBUG_TYPE, new BerthConfigurationProvider(berth), vscode.DebugConfigurationProviderTriggerKind.Dynamic),
    vscode.debug.registerDebugAdapterDescriptorFactory(DEBUG_TYPE, new BerthAdapterFactory(berth)),
    vscode.debug.registerDebugConfigurationProvider('debugpy', new DebugpyBerthProvider(berth)),
    vscode.debug.registerDebugConfigurationProvider('go', new DelveBerthProvider(berth)),
    // The debuggee outlives a detached debug client; end it with the session.
    vscode.debug.onDidTerminateDebugSession((s) => {
      const info = s.configuration[SESSION_KEY] as SessionInfo | undefined;
      if (info?.pid && berth.running) {
        void berth.request('berth/signal', { pid: info.pid, signal: 'TERM' }).catch(() => undefined);
      }
    }),
  ];
}
