// Text conversion for a VS Code Pseudoterminal fed by berth/output, and a
// small line discipline for its input (berth's non-tty processes see a pipe,
// so the terminal echoes and edits lines itself).

/**
 * Converts output text to terminal text: a bare "\n" becomes "\r\n". Keeps
 * state across pieces, since berth cuts output anywhere (a "\r\n" may be
 * split between two notifications).
 */
export class OutputConverter {
  private lastCR = false;

  convert(text: string): string {
    let out = '';
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c === '\n') {
        const prevCR = i > 0 ? text[i - 1] === '\r' : this.lastCR;
        out += prevCR ? '\n' : '\r\n';
      } else {
        out += c;
      }
    }
    if (text.length > 0) this.lastCR = text[text.length - 1] === '\r';
    return out;
  }
}

/** Stateless form of OutputConverter for a whole text. */
export function toTerminalText(text: string): string {
  return new OutputConverter().convert(text);
}

export interface InputActions {
  /** Text to write back to the terminal (echo). */
  echo: string;
  /** Lines (each ending in "\n") to send with berth/stdin. */
  send: string[];
  /** Ctrl-D on an empty line: close stdin. */
  eof: boolean;
  /** Ctrl-C: interrupt the process (berth/signal INT). */
  interrupt: boolean;
}

/**
 * Canonical-mode line editing: printable characters are echoed and kept
 * until Enter, Backspace erases, Ctrl-U kills the line, Ctrl-C interrupts,
 * Ctrl-D sends the pending text (or EOF when there is none).
 */
export class LineDiscipline {
  private line = '';

  /** The text typed and not yet sent. */
  get pending(): string {
    return this.line;
  }

  feed(data: string): InputActions {
    const act: InputActions = { echo: '', send: [], eof: false, interrupt: false };
    // Drop escape sequences (arrow keys, …): this is not a line editor.
    data = data.replace(/\x1b\[[0-9;?]*[A-Za-z~]|\x1bO[A-Za-z]/g, '');
    for (const ch of data) {
      switch (ch) {
        case '\r':
        case '\n':
          act.send.push(this.line + '\n');
          act.echo += '\r\n';
          this.line = '';
          break;
        case '\x7f':
        case '\b':
          if (this.line.length > 0) {
            const chars = Array.from(this.line);
            chars.pop();
            this.line = chars.join('');
            act.echo += '\b \b';
          }
          break;
        case '\x15': // Ctrl-U
          act.echo += '\b \b'.repeat(Array.from(this.line).length);
          this.line = '';
          break;
        case '\x03': // Ctrl-C
          act.echo += '^C\r\n';
          act.interrupt = true;
          this.line = '';
          break;
        case '\x04': // Ctrl-D
          if (this.line === '') {
            act.eof = true;
          } else {
            act.send.push(this.line);
            this.line = '';
          }
          break;
        default:
          if (ch >= ' ' || ch === '\t') {
            this.line += ch;
            act.echo += ch;
          }
      }
    }
    return act;
  }
}

/** The line a terminal shows when its process ends. */
export function exitMessage(p: { code: number; signal?: string; reason?: string }): string {
  if (p.reason) return `[process ended: ${p.reason}]`;
  if (p.signal) return `[process killed by ${p.signal} (exit code ${p.code})]`;
  return `[process exited with code ${p.code}]`;
}
