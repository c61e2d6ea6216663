// Language servers in the container: one vscode-languageclient client per
// berth.languageServers entry, each spawning `berth lsp -- SERVER` for the
// first workspace folder. berth maps every URI, so VS Code sees host files
// and, for the container's own (its standard library), a read-only mirror.

import * as vscode from 'vscode';
import { LanguageClient, LanguageClientOptions, ServerOptions, TransportKind } from 'vscode-languageclient/node';
import { documentSelector, languageServerName, lspCommand, parseLanguageServers } from './logic/lsp';

export class LanguageServers implements vscode.Disposable {
  private clients: LanguageClient[] = [];
  private subs: vscode.Disposable[] = [];

  constructor(private readonly output: vscode.OutputChannel) {
    this.subs.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (['berth.languageServers', 'berth.path', 'berth.backend', 'berth.image'].some((s) => e.affectsConfiguration(s))) {
          void this.restart();
        }
      }),
      vscode.workspace.onDidChangeWorkspaceFolders(() => void this.restart()),
      vscode.workspace.onDidGrantWorkspaceTrust(() => void this.restart()),
    );
  }

  /** Stops the running clients and starts one per entry of the setting. */
  async restart(): Promise<void> {
    await this.stop();
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    if (!folder) return;
    const cfg = vscode.workspace.getConfiguration('berth');
    const { entries, errors } = parseLanguageServers(cfg.get('languageServers'));
    for (const err of errors) {
      this.output.appendLine(err);
      void vscode.window.showWarningMessage(err);
    }
    const settings = { path: cfg.get<string>('path', 'berth'), backend: cfg.get<string>('backend', ''), image: cfg.get<string>('image', '') };
    entries.forEach((entry, i) => {
      const cmd = lspCommand(settings, folder, entry, vscode.workspace.isTrusted);
      const server: ServerOptions = { command: cmd.command, args: cmd.args, options: { cwd: folder }, transport: TransportKind.stdio };
      const name = languageServerName(entry);
      const options: LanguageClientOptions = {
        documentSelector: documentSelector(entry),
        outputChannelName: name,
        workspaceFolder: vscode.workspace.workspaceFolders?.[0],
      };
      const client = new LanguageClient(`berth.lsp.${i}`, name, server, options);
      this.clients.push(client);
      client.start().catch((e) => {
        this.output.appendLine(`${name}: ${(e as Error).message ?? e}`);
      });
    });
  }

  async stop(): Promise<void> {
    const old = this.clients;
    this.clients = [];
    await Promise.all(old.map((c) => c.stop().catch(() => undefined)));
  }

  dispose(): void {
    for (const s of this.subs) s.dispose();
    void this.stop();
  }
}
