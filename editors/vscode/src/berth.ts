// The connection to berth: a vscode-languageclient LanguageClient, so that
// textDocument/publishDiagnostics lands in Problems, window/logMessage in
// the output channel and $/progress in progress notifications.

import * as net from 'net';
import * as os from 'os';
import * as vscode from 'vscode';
import {
  CancellationToken as LspCancellationToken,
  LanguageClient,
  LanguageClientOptions,
  ResponseError,
  RevealOutputChannelOn,
  ServerOptions,
  State,
  StreamInfo,
  WorkDoneProgress,
} from 'vscode-languageclient/node';
import { ProcessRouter } from './logic/router';
import { initializationOptions, parseAttachAddress, resolveToken, serverCommand } from './logic/settings';
import { showDocumentAction } from './logic/ports';
import type { ConfigChangedParams, ExitParams, InitializeResult, OutputParams, PortsChangedParams } from './logic/wire';

export type ConfigChangedHandler = (p: ConfigChangedParams) => void;

let progressSeq = 0;

export class Berth implements vscode.Disposable {
  readonly output: vscode.OutputChannel;
  readonly router: ProcessRouter;
  private client: LanguageClient | undefined;
  private starting: Promise<LanguageClient> | undefined;
  private configChanged = new vscode.EventEmitter<ConfigChangedParams>();
  private stateChanged = new vscode.EventEmitter<boolean>();
  private portsChanged = new vscode.EventEmitter<PortsChangedParams>();
  private unclaimedOutput = new vscode.EventEmitter<OutputParams>();
  /** Output no one has claimed yet, such as a test run's before berth answers. */
  readonly onUnclaimedOutput = this.unclaimedOutput.event;
  /** berth/configChanged notifications. */
  readonly onConfigChanged = this.configChanged.event;
  /** berth/portsChanged notifications. */
  readonly onPortsChanged = this.portsChanged.event;
  /** Fires true when berth is up, false when it stopped. */
  readonly onRunning = this.stateChanged.event;
  initializeResult: InitializeResult | undefined;

  constructor() {
    this.output = vscode.window.createOutputChannel('berth');
    this.router = new ProcessRouter({
      // Output no one waits for (image builds, lifecycle hooks, a test run
      // before its answer) is shown in the output channel.
      unclaimed: (pid, ev) => {
        if (ev.text !== undefined) {
          this.output.append(ev.text);
          this.unclaimedOutput.fire({ pid, stream: ev.stream ?? 'stdout', text: ev.text });
        }
        else if (ev.exit) this.output.appendLine(`[berth ${pid} exited with code ${ev.exit.code}${ev.exit.signal ? ` (${ev.exit.signal})` : ''}]`);
      },
    });
  }

  /** The running client, started on first use. */
  async ready(): Promise<LanguageClient> {
    if (this.client && this.client.state === State.Running) return this.client;
    if (!this.starting) {
      this.starting = this.start().finally(() => {
        this.starting = undefined;
      });
    }
    return this.starting;
  }

  get running(): boolean {
    return this.client?.state === State.Running;
  }

  private async start(): Promise<LanguageClient> {
    if (this.client) {
      const old = this.client;
      this.client = undefined;
      await old.dispose().catch(() => undefined);
    }
    const cfg = vscode.workspace.getConfiguration('berth');
    const settings = {
      path: cfg.get<string>('path', 'berth'),
      backend: cfg.get<string>('backend', ''),
      image: cfg.get<string>('image', ''),
      tcp: cfg.get<string>('tcp', ''),
      tokenFile: cfg.get<string>('tokenFile', ''),
    };
    const attach = parseAttachAddress(settings.tcp);
    let serverOptions: ServerOptions;
    let token: string | undefined;
    if (attach) {
      if (attach.kind === 'tcp') {
        token = await resolveToken(settings.tokenFile, attach.port, { env: process.env, platform: process.platform, home: os.homedir() });
      }
      serverOptions = () =>
        new Promise<StreamInfo>((resolve, reject) => {
          const sock = attach.kind === 'unix' ? net.connect({ path: attach.path }) : net.connect(attach.port, attach.host);
          sock.once('connect', () => resolve({ reader: sock, writer: sock }));
          sock.once('error', reject);
        });
    } else {
      const cmd = serverCommand(settings);
      serverOptions = { command: cmd.command, args: cmd.args, options: { env: process.env } };
    }
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file' }],
      diagnosticCollectionName: 'berth',
      outputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      // VS Code's workspace trust is berth's: a trusted workspace's
      // configuration runs without asking; in Restricted Mode berth asks
      // with window/showMessageRequest, which the language client shows.
      initializationOptions: initializationOptions(settings, token, vscode.workspace.isTrusted),
      middleware: {
        window: {
          // berth's $BROWSER bridge: a URL opened inside the container
          // opens in the host's browser.
          showDocument: async (params, next) => {
            switch (showDocumentAction(params)) {
              case 'openExternal':
                this.output.appendLine(`berth: opening ${params.uri} (asked from the container)`);
                return { success: await vscode.env.openExternal(vscode.Uri.parse(params.uri, true)) };
              case 'refuse':
                this.output.appendLine(`berth: not opening ${params.uri}: only http and https URLs open from the container`);
                return { success: false };
              default: {
                const r = await next(params, new vscode.CancellationTokenSource().token);
                return r instanceof ResponseError ? { success: false } : r;
              }
            }
          },
        },
      },
      initializationFailedHandler: (err) => {
        this.output.appendLine(`berth: initialize failed: ${err instanceof Error ? err.message : String(err)}`);
        return false;
      },
    };
    const client = new LanguageClient('berth', 'berth', serverOptions, clientOptions);
    client.onDidChangeState((e) => {
      if (e.newState === State.Running) this.stateChanged.fire(true);
      if (e.newState === State.Stopped) {
        this.router.reset('berth stopped');
        this.stateChanged.fire(false);
      }
    });
    this.client = client;
    await client.start();
    this.initializeResult = client.initializeResult as InitializeResult | undefined;
    client.onNotification('berth/output', (p: OutputParams) => this.router.output(p));
    client.onNotification('berth/exit', (p: ExitParams) => this.router.exit(p));
    client.onNotification('berth/configChanged', (p: ConfigChangedParams) => this.configChanged.fire(p));
    client.onNotification('berth/portsChanged', (p: PortsChangedParams) => this.portsChanged.fire(p));
    const info = this.initializeResult?.serverInfo;
    this.output.appendLine(`berth: connected to ${info?.name ?? 'berth'} ${info?.version ?? ''} (${attach ? (attach.kind === 'unix' ? `unix ${attach.path}` : `tcp ${attach.host}:${attach.port}`) : 'stdio'})`);
    return client;
  }

  /** Restarts berth (after a settings change). */
  async restart(): Promise<void> {
    this.starting = undefined;
    await this.stop();
    await this.ready();
  }

  async stop(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.stop().catch(() => undefined);
  }

  /** A request to berth. */
  async request<R>(method: string, params?: object, token?: vscode.CancellationToken): Promise<R> {
    const client = await this.ready();
    return client.sendRequest<R>(method, params ?? {}, token as LspCancellationToken | undefined);
  }

  /**
   * A request shown as a progress notification: it carries a workDoneToken,
   * so berth's $/progress steps appear in it, and it can be cancelled
   * ($/cancelRequest).
   */
  async requestWithProgress<R>(title: string, method: string, params: object = {}): Promise<R> {
    const client = await this.ready();
    const token = `berth-vscode-${process.pid}-${++progressSeq}`;
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title, cancellable: true },
      async (progress, cancel) => {
        const sub = client.onProgress(WorkDoneProgress.type, token, (v) => {
          if (v.kind === 'report' && v.message) progress.report({ message: v.message });
        });
        try {
          return await client.sendRequest<R>(method, { ...params, workDoneToken: token }, cancel as LspCancellationToken);
        } finally {
          sub.dispose();
        }
      },
    );
  }

  dispose(): void {
    void this.stop();
    this.configChanged.dispose();
    this.stateChanged.dispose();
    this.portsChanged.dispose();
    this.unclaimedOutput.dispose();
    this.output.dispose();
  }
}

/** A message for a failed request; berth's codes are stable, messages are for people. */
export function errorMessage(err: unknown): string {
  if (err instanceof ResponseError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

export function errorCode(err: unknown): number | undefined {
  return err instanceof ResponseError ? err.code : undefined;
}

/** The workspace folder to act on: the active editor's, else the first. */
export function currentFolder(): vscode.WorkspaceFolder | undefined {
  const uri = vscode.window.activeTextEditor?.document.uri;
  if (uri) {
    const f = vscode.workspace.getWorkspaceFolder(uri);
    if (f) return f;
  }
  return vscode.workspace.workspaceFolders?.[0];
}

/** The `workspace` param for the current folder (omitted without one: berth's default). */
export function workspaceParam(folder = currentFolder()): { workspace?: string } {
  return folder && folder.uri.scheme === 'file' ? { workspace: folder.uri.fsPath } : {};
}
