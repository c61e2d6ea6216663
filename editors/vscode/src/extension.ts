// berth for VS Code: runs the workspace's commands, tests, linters and
// debuggers in its container through `berth --stdio`.
//
// This file only wires VS Code to berth; the logic lives in ./logic (no
// vscode import there) and is unit-tested with node's test runner.

import * as vscode from 'vscode';
import { Berth, errorCode, errorMessage, workspaceParam } from './berth';
import { attachDebugger, registerDebugging } from './debugging';
import { LanguageServers } from './languageServers';
import { PortsView } from './ports';
import { ExecPty } from './pty';
import { BerthTests } from './testing';
import { startEagerly } from './logic/activation';
import { CommandLineError, commandArgv } from './logic/cmdline';
import { parseForward, validateForward } from './logic/forward';
import { restartSettings, shellCommand } from './logic/settings';
import { describeInstance, formatStatus } from './logic/status';
import { ErrorCodes, ForwardResult, Instance, LintResult } from './logic/wire';

let berth: Berth | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const b = new Berth();
  berth = b;
  const folders = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
  const eager = startEagerly(folders, vscode.workspace.getConfiguration('berth').get('languageServers'));
  const tests = new BerthTests(b, () => eager || b.running);
  const ports = new PortsView(b);
  const status = vscode.window.createStatusBarItem('berth.status', vscode.StatusBarAlignment.Left, 50);
  status.name = 'berth';
  status.command = 'berth.showInstances';
  status.text = '$(loading~spin) berth';
  context.subscriptions.push(b, tests, ports, status, ...registerDebugging(b));

  // berth.languageServers: language servers in the container, each its
  // own `berth lsp` process.
  const servers = new LanguageServers(b.output);
  context.subscriptions.push(servers);
  void servers.restart();

  // The "berth" terminal profile: the remote user's login shell, through
  // `berth shell`, on a real terminal of VS Code's.
  context.subscriptions.push(
    vscode.window.registerTerminalProfileProvider('berth.shell', {
      provideTerminalProfile() {
        const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
        if (!folder) {
          throw new Error('berth: open a folder first; the shell runs in its container');
        }
        const cfg = vscode.workspace.getConfiguration('berth');
        const cmd = shellCommand(
          { path: cfg.get<string>('path', 'berth'), backend: cfg.get<string>('backend', ''), image: cfg.get<string>('image', '') },
          folder,
          vscode.workspace.isTrusted,
        );
        return new vscode.TerminalProfile({
          name: 'berth',
          shellPath: cmd.command,
          shellArgs: cmd.args,
          cwd: folder,
          iconPath: new vscode.ThemeIcon('vm'),
        });
      },
    }),
  );

  const refreshStatus = async () => {
    // Never the reason berth starts: that is a berth command, or a folder
    // berth belongs in (startEagerly).
    if (!vscode.workspace.workspaceFolders?.length || !b.running) {
      status.hide();
      return;
    }
    status.show();
    try {
      const inst = await b.request<Instance | null>('berth/status', workspaceParam());
      const v = formatStatus(inst);
      status.text = v.text;
      status.tooltip = v.tooltip;
      status.command = v.kind === 'none' ? 'berth.up' : 'berth.showInstances';
      status.backgroundColor = v.kind === 'stale' ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    } catch (e) {
      const v = formatStatus(undefined, errorMessage(e));
      status.text = v.text;
      status.tooltip = v.tooltip;
      status.command = 'berth.showOutput';
      status.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
    }
  };

  const up = async (recreate = false): Promise<Instance | undefined> => {
    try {
      const inst = await b.requestWithProgress<Instance>(
        recreate ? 'berth: rebuilding the container' : 'berth: opening the workspace in a container',
        'berth/up',
        { ...workspaceParam(), ...(recreate ? { recreate: true } : {}) },
      );
      const failed = (inst.hooks ?? []).filter((h) => h.code !== 0 || h.error);
      const fwd = (inst.forwarded ?? []).map((f) => `${f.host}:${f.hostPort}`).join(', ');
      void vscode.window.showInformationMessage(
        `berth: ${inst.name} is ${inst.state}${inst.created ? ' (created)' : ''}${fwd ? `; forwarded ${fwd}` : ''}`,
      );
      if (failed.length) {
        void vscode.window.showWarningMessage(`berth: ${failed.map((h) => `${h.hook}${h.name ? ` ${h.name}` : ''} failed (${h.error ?? `exit ${h.code}`})`).join('; ')}`, 'Show Output').then((a) => a && b.output.show());
      }
      return inst;
    } catch (e) {
      await showError('open the container', e);
      return undefined;
    } finally {
      void refreshStatus();
    }
  };

  const showError = async (what: string, e: unknown) => {
    const code = errorCode(e);
    if (code === ErrorCodes.RequestCancelled) return;
    const actions = ['Show Output'];
    if (code === ErrorCodes.ImageNotFound) actions.push('Set Image');
    if (code === ErrorCodes.Untrusted && !vscode.workspace.isTrusted) actions.push('Manage Workspace Trust');
    const a = await vscode.window.showErrorMessage(`berth: could not ${what}: ${errorMessage(e)}`, ...actions);
    if (a === 'Show Output') b.output.show();
    if (a === 'Manage Workspace Trust') void vscode.commands.executeCommand('workbench.trust.manage');
    if (a === 'Set Image') void vscode.commands.executeCommand('workbench.action.openSettings', 'berth.image');
  };

  const runInTerminal = async () => {
    const line = await vscode.window.showInputBox({
      title: 'berth: Run Command in Container',
      prompt: 'Command to run in the container (shell syntax runs under sh -c)',
      placeHolder: 'python3 main.py',
      value: context.workspaceState.get<string>('berth.lastCommand', ''),
    });
    if (!line) return;
    let argv: string[];
    try {
      argv = commandArgv(line);
    } catch (e) {
      if (e instanceof CommandLineError) void vscode.window.showErrorMessage(`berth: ${e.message}`);
      return;
    }
    if (!argv.length) return;
    await context.workspaceState.update('berth.lastCommand', line);
    const pty = new ExecPty(b, { ...workspaceParam(), argv }, (p) => {
      if (p.code !== 0) void vscode.window.setStatusBarMessage(`berth: ${argv[0]} exited with code ${p.code}`, 8000);
    });
    const term = vscode.window.createTerminal({ name: `berth: ${argv[0] === 'sh' && argv[1] === '-c' ? argv[2] : argv[0]}`, pty, iconPath: new vscode.ThemeIcon('vm') });
    term.show();
  };

  const lint = async () => {
    const last = context.workspaceState.get<string>('berth.linter', 'pyflakes');
    const items: vscode.QuickPickItem[] = [
      { label: 'pyflakes', description: 'python3 -m pyflakes' },
      { label: 'go vet', description: 'go vet ./...' },
    ].sort((x, y) => (x.label === last ? -1 : y.label === last ? 1 : 0));
    const pick = await vscode.window.showQuickPick(items, { title: 'berth: Lint in Container' });
    if (!pick) return;
    await context.workspaceState.update('berth.linter', pick.label);
    try {
      const r = await b.requestWithProgress<LintResult>(`berth: ${pick.label}`, 'berth/lint', { ...workspaceParam(), linter: pick.label });
      const msg = `berth: ${r.linter}: ${r.diagnostics} problem${r.diagnostics === 1 ? '' : 's'} in ${r.files} file${r.files === 1 ? '' : 's'}` +
        (r.cleared ? `, ${r.cleared} cleared` : '') + (r.unmapped ? `, ${r.unmapped} outside the workspace` : '');
      if (r.diagnostics) {
        const a = await vscode.window.showInformationMessage(msg, 'Show Problems');
        if (a) void vscode.commands.executeCommand('workbench.actions.view.problems');
      } else {
        void vscode.window.setStatusBarMessage(msg, 8000);
      }
    } catch (e) {
      await showError('lint', e);
    }
  };

  const forward = async () => {
    const input = await vscode.window.showInputBox({
      title: 'berth: Forward Port',
      prompt: 'Container port (PORT, HOSTPORT:PORT or HOSTPORT:HOST:PORT)',
      placeHolder: '8000',
      validateInput: (v) => (v.trim() === '' ? undefined : validateForward(v)),
    });
    if (!input) return;
    try {
      const spec = parseForward(input);
      const r = await b.requestWithProgress<ForwardResult>('berth: forwarding', 'berth/forward', { ...workspaceParam(), ...spec });
      const url = `http://${r.host}:${r.hostPort}`;
      const a = await vscode.window.showInformationMessage(
        `berth: container port ${spec.containerPort} is at ${r.host}:${r.hostPort} (${r.tunnelId})`,
        'Open in Browser',
        'Copy Address',
      );
      if (a === 'Open in Browser') void vscode.env.openExternal(vscode.Uri.parse(url));
      if (a === 'Copy Address') void vscode.env.clipboard.writeText(`${r.host}:${r.hostPort}`);
    } catch (e) {
      await showError('forward the port', e);
    }
  };

  const down = async (remove: boolean, workspace?: string) => {
    const ws = workspace ? { workspace } : workspaceParam();
    if (remove) {
      const ok = await vscode.window.showWarningMessage(
        `berth: remove the container of ${ws.workspace ?? 'this workspace'}? Its processes die and changes outside the workspace are lost.`,
        { modal: true },
        'Remove',
      );
      if (ok !== 'Remove') return;
    }
    try {
      await b.requestWithProgress(remove ? 'berth: removing the container' : 'berth: stopping the container', 'berth/down', { ...ws, remove });
      void vscode.window.setStatusBarMessage(remove ? 'berth: container removed' : 'berth: container stopped', 5000);
    } catch (e) {
      await showError(remove ? 'remove the container' : 'stop the container', e);
    } finally {
      void refreshStatus();
    }
  };

  const showInstances = async () => {
    let list: Instance[];
    try {
      list = (await b.request<Instance[] | null>('berth/list')) ?? [];
    } catch (e) {
      await showError('list containers', e);
      return;
    }
    if (!list.length) {
      const a = await vscode.window.showInformationMessage('berth: no containers yet.', 'Open Workspace in Container');
      if (a) void up();
      return;
    }
    const current = workspaceParam().workspace;
    type Item = vscode.QuickPickItem & { inst: Instance };
    const items: Item[] = list.map((inst) => {
      const d = describeInstance(inst);
      return { ...d, label: `${inst.state === 'running' ? '$(vm-running)' : '$(vm-outline)'} ${d.label}`, picked: inst.workspace === current, inst };
    });
    const pick = await vscode.window.showQuickPick(items, { title: 'berth: Instances', matchOnDescription: true, matchOnDetail: true });
    if (!pick) return;
    const inst = pick.inst;
    const isCurrent = inst.workspace === current;
    const actions = [
      ...(isCurrent ? [inst.state === 'running' ? '' : 'Start', inst.stale ? 'Rebuild' : ''] : ['Open Folder']),
      inst.state === 'running' ? 'Stop' : '',
      'Remove',
      'Copy Name',
    ].filter((a) => a);
    const act = await vscode.window.showQuickPick(actions, { title: inst.name });
    switch (act) {
      case 'Start':
        await up();
        break;
      case 'Rebuild':
        await up(true);
        break;
      case 'Open Folder':
        void vscode.commands.executeCommand('vscode.openFolder', vscode.Uri.file(inst.workspace), { forceNewWindow: true });
        break;
      case 'Stop':
        await down(false, inst.workspace);
        break;
      case 'Remove':
        await down(true, inst.workspace);
        break;
      case 'Copy Name':
        void vscode.env.clipboard.writeText(inst.name);
        break;
    }
  };

  const reg = (id: string, fn: (...args: unknown[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  reg('berth.up', () => up());
  reg('berth.rebuild', () => up(true));
  reg('berth.exec', runInTerminal);
  reg('berth.test', () => tests.run(new vscode.TestRunRequest()));
  reg('berth.lint', lint);
  reg('berth.forward', forward);
  reg('berth.showInstances', showInstances);
  reg('berth.stop', () => down(false));
  reg('berth.remove', () => down(true));
  reg('berth.attachDebugger', () => attachDebugger(b));
  reg('berth.showOutput', () => b.output.show());
  reg('berth.ports.refresh', () => ports.refresh());
  reg('berth.ports.open', (row) => ports.open(row as never));
  reg('berth.ports.stop', (row) => ports.stop(row as never));
  reg('berth.ports.forward', (row) => ports.forward(row as never));
  reg('berth.tests.refresh', () => tests.discover().catch((e) => showError('list the tests', e)));
  reg('berth.restart', async () => {
    try {
      await b.restart();
    } catch (e) {
      await showError('restart berth', e);
    }
    void refreshStatus();
  });

  context.subscriptions.push(
    b.onConfigChanged(async (p) => {
      void refreshStatus();
      const files = p.files.map((f) => vscode.workspace.asRelativePath(f)).join(', ');
      const a = await vscode.window.showInformationMessage(
        `berth: the container configuration of ${vscode.workspace.asRelativePath(p.workspace)} changed (${files}). Rebuild container?`,
        'Rebuild',
        'Later',
      );
      if (a === 'Rebuild') {
        try {
          await b.requestWithProgress('berth: rebuilding the container', 'berth/up', { workspace: p.workspace, recreate: true });
        } catch (e) {
          await showError('rebuild the container', e);
        }
        void refreshStatus();
      }
    }),
    b.onRunning(() => void refreshStatus()),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!restartSettings.some((s) => e.affectsConfiguration(s))) return;
      const a = await vscode.window.showInformationMessage('berth: settings changed. Restart berth?', 'Restart');
      if (a) void vscode.commands.executeCommand('berth.restart');
    }),
    vscode.workspace.onDidChangeWorkspaceFolders(() => void refreshStatus()),
    // berth reads trust at initialize: tell it of the new trust.
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      if (b.running) void b.restart();
    }),
    vscode.window.onDidChangeWindowState((s) => {
      if (s.focused && b.running) void refreshStatus();
    }),
  );

  // The Ports view shows once berth belongs in this window.
  const setActive = () => void vscode.commands.executeCommand('setContext', 'berth.active', true);
  context.subscriptions.push(b.onRunning((up) => up && setActive()));
  if (eager) {
    setActive();
    // Start berth without holding up activation.
    status.show();
    b.ready().then(
      () => void refreshStatus(),
      (e) => {
        status.text = '$(error) berth: not running';
        status.tooltip = `berth could not start: ${errorMessage(e)}`;
        status.command = 'berth.showOutput';
        void vscode.window.showErrorMessage(`berth: could not start berth: ${errorMessage(e)}`, 'Open Settings', 'Show Output').then((a) => {
          if (a === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'berth.path');
          if (a === 'Show Output') b.output.show();
        });
      },
    );
  } else {
    status.hide();
  }
}

export async function deactivate(): Promise<void> {
  await berth?.stop();
}
