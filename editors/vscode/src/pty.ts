// "Run Command in Container": a Pseudoterminal fed by berth/output, whose
// typed lines go to the process with berth/stdin.

import * as vscode from 'vscode';
import { Berth, errorMessage } from './berth';
import { joinCommandLine } from './logic/cmdline';
import { LineDiscipline, OutputConverter, exitMessage } from './logic/terminal';
import type { ExecParams, ExitParams } from './logic/wire';

export class ExecPty implements vscode.Pseudoterminal {
  private writeEmitter = new vscode.EventEmitter<string>();
  private closeEmitter = new vscode.EventEmitter<number | void>();
  readonly onDidWrite = this.writeEmitter.event;
  readonly onDidClose = this.closeEmitter.event;
  private out = new OutputConverter();
  private err = new OutputConverter();
  private ld = new LineDiscipline();
  private pid: string | undefined;
  private exited = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly berth: Berth,
    private readonly params: ExecParams,
    private readonly onExit?: (p: ExitParams) => void,
  ) {}

  open(): void {
    this.writeEmitter.fire(`\x1b[2m$ ${joinCommandLine(this.params.argv)}\x1b[0m\r\n`);
    this.berth
      .request<{ pid: string }>('berth/exec', { ...this.params, stdin: true, kind: this.params.kind ?? 'run' })
      .then((res) => {
        this.pid = res.pid;
        this.berth.router.claim(res.pid, {
          output: (stream, text) => {
            const t = stream === 'stderr' ? this.err.convert(text) : this.out.convert(text);
            this.writeEmitter.fire(stream === 'stderr' ? `\x1b[31m${t}\x1b[0m` : t);
          },
          exit: (p) => this.finish(p),
        });
      })
      .catch((e) => {
        this.exited = true;
        this.writeEmitter.fire(`\x1b[31mberth: ${errorMessage(e)}\x1b[0m\r\n`);
      });
  }

  private finish(p: ExitParams): void {
    this.exited = true;
    this.writeEmitter.fire(`\r\n\x1b[2m${exitMessage(p)}\x1b[0m\r\n`);
    this.onExit?.(p);
  }

  handleInput(data: string): void {
    if (this.exited) {
      // Any key after the end closes the terminal, as VS Code's tasks do.
      this.closeEmitter.fire();
      return;
    }
    const act = this.ld.feed(data);
    if (act.echo) this.writeEmitter.fire(act.echo);
    const pid = this.pid;
    if (!pid) return;
    // berth/stdin is inline on berth's side; keep our sends in order too.
    for (const text of act.send) this.send('berth/stdin', { pid, text });
    if (act.eof) this.send('berth/stdin', { pid, close: true });
    if (act.interrupt) this.send('berth/signal', { pid, signal: 'INT' });
  }

  private send(method: string, params: object): void {
    this.queue = this.queue
      .then(() => this.berth.request(method, params))
      .catch((e) => this.writeEmitter.fire(`\r\n\x1b[31mberth: ${errorMessage(e)}\x1b[0m\r\n`));
  }

  close(): void {
    if (this.pid && !this.exited) {
      const pid = this.pid;
      this.berth.router.release(pid);
      void this.berth.request('berth/signal', { pid, signal: 'TERM' }).catch(() => undefined);
    }
    this.writeEmitter.dispose();
    this.closeEmitter.dispose();
  }
}
