// The Ports view: berth/ports for the current folder, refreshed on
// berth/portsChanged, with open, stop and forward; and what auto-forwards
// do (logic/ports.ts says which).

import * as vscode from 'vscode';
import { Berth, currentFolder, errorMessage, workspaceParam } from './berth';
import { parseForward, validateForward } from './logic/forward';
import { AutoForwardTracker, PortRow, PortsModel, notifyText, portUrl } from './logic/ports';
import type { Requester } from './logic/testSession';

export class PortsView implements vscode.TreeDataProvider<PortRow>, vscode.Disposable {
  private changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private model: PortsModel | undefined;
  private tracker = new AutoForwardTracker();
  private disposables: vscode.Disposable[] = [];
  private readonly requester: Requester;
  private unavailable = '';

  constructor(private readonly berth: Berth) {
    this.requester = { request: (m, p) => berth.request(m, p) };
    const view = vscode.window.createTreeView('berth.ports', { treeDataProvider: this, showCollapseAll: false });
    this.disposables.push(
      view,
      this.changed,
      berth.onPortsChanged((p) => {
        for (const a of this.tracker.changes(p)) void this.act(a.kind, a.url, notifyText(a));
        if (p.workspace === workspaceParam(currentFolder()).workspace || !workspaceParam(currentFolder()).workspace) void this.refresh();
      }),
      berth.onRunning((up) => (up ? void this.refresh() : this.clear())),
      vscode.window.onDidChangeActiveTextEditor(() => void this.refresh()),
    );
  }

  private async act(kind: 'notify' | 'openBrowser' | 'openPreview', url: string, text: string): Promise<void> {
    const uri = vscode.Uri.parse(url);
    if (kind === 'openBrowser') {
      await vscode.env.openExternal(uri);
      return;
    }
    if (kind === 'openPreview') {
      // VS Code's Simple Browser, if there; else the host's browser.
      const ok = await vscode.commands.executeCommand('simpleBrowser.show', url).then(() => true, () => false);
      if (!ok) await vscode.env.openExternal(uri);
      return;
    }
    const a = await vscode.window.showInformationMessage(text, 'Open in Browser', 'Show Ports');
    if (a === 'Open in Browser') await vscode.env.openExternal(uri);
    if (a === 'Show Ports') await vscode.commands.executeCommand('berth.ports.focus');
  }

  private clear(): void {
    this.model = undefined;
    this.changed.fire();
  }

  async refresh(): Promise<void> {
    if (!this.berth.running) return;
    const ws = workspaceParam(currentFolder()).workspace;
    this.model = new PortsModel(this.requester, ws);
    try {
      await this.model.refresh();
      this.unavailable = '';
    } catch (e) {
      this.unavailable = errorMessage(e);
    }
    this.changed.fire();
  }

  getTreeItem(row: PortRow): vscode.TreeItem {
    const item = new vscode.TreeItem(row.label, vscode.TreeItemCollapsibleState.None);
    item.id = row.key;
    item.description = row.description;
    item.tooltip = row.tooltip;
    item.contextValue = row.state === 'forwarded' ? 'berthPortForwarded' : 'berthPortDetected';
    item.iconPath = new vscode.ThemeIcon(row.state === 'forwarded' ? 'radio-tower' : 'circle-outline');
    if (row.hostPort) item.command = { command: 'berth.ports.open', title: 'Open in Browser', arguments: [row] };
    return item;
  }

  getChildren(row?: PortRow): PortRow[] {
    if (row || !this.model) return [];
    if (this.unavailable && !this.model.rows.length) {
      return [{ key: 'error', label: 'Ports unavailable', description: this.unavailable, tooltip: this.unavailable, containerPort: 0, state: 'detected' }];
    }
    return this.model.rows;
  }

  /** berth.ports.open */
  async open(row?: PortRow): Promise<void> {
    if (!row?.hostPort) return;
    await vscode.env.openExternal(vscode.Uri.parse(portUrl(row.host, row.hostPort)));
  }

  /** berth.ports.stop */
  async stop(row?: PortRow): Promise<void> {
    if (!row?.tunnelId || !this.model) return;
    try {
      await this.model.stop(row.tunnelId);
    } catch (e) {
      void vscode.window.showErrorMessage(`berth: could not stop forwarding ${row.containerPort}: ${errorMessage(e)}`);
    }
    this.changed.fire();
  }

  /** berth.ports.forward: a detected port's row, or asks for one. */
  async forward(row?: PortRow): Promise<void> {
    let containerPort = row?.containerPort;
    let hostPort: number | undefined;
    if (!containerPort) {
      const input = await vscode.window.showInputBox({
        title: 'berth: Forward a Port',
        prompt: 'Container port (PORT or HOSTPORT:PORT)',
        placeHolder: '8000',
        validateInput: (v) => (v.trim() === '' ? undefined : validateForward(v)),
      });
      if (!input) return;
      const spec = parseForward(input);
      containerPort = spec.containerPort;
      hostPort = spec.hostPort;
    }
    if (!this.model) await this.refresh();
    if (!this.model) return;
    try {
      const r = await this.model.forward(containerPort, hostPort);
      void vscode.window.setStatusBarMessage(`berth: container port ${containerPort} is at ${portUrl(r.host, r.hostPort)}`, 8000);
    } catch (e) {
      void vscode.window.showErrorMessage(`berth: could not forward ${containerPort}: ${errorMessage(e)}`);
    }
    this.changed.fire();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
