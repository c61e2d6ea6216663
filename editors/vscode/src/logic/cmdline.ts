// Splitting a command line typed by a person into argv, POSIX-shell style
// (quotes and backslashes, no expansion).

export class CommandLineError extends Error {}

/**
 * Splits `line` into words: whitespace separates, '…' is literal, "…"
 * allows \" \\ \$ \` escapes, and a backslash outside quotes escapes the
 * next character. Throws CommandLineError on an unterminated quote.
 */
export function splitCommandLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (inWord) {
        out.push(cur);
        cur = '';
        inWord = false;
      }
      i++;
      continue;
    }
    inWord = true;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new CommandLineError('unterminated single quote');
      cur += line.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const d = line[i];
        if (d === '"') {
          closed = true;
          i++;
          break;
        }
        if (d === '\\' && i + 1 < n && '"\\$`'.includes(line[i + 1])) {
          cur += line[i + 1];
          i += 2;
          continue;
        }
        cur += d;
        i++;
      }
      if (!closed) throw new CommandLineError('unterminated double quote');
    } else if (c === '\\') {
      if (i + 1 < n) {
        cur += line[i + 1];
        i += 2;
      } else {
        i++; // trailing backslash: dropped
      }
    } else {
      cur += c;
      i++;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/** Quotes argv for display, so that splitCommandLine(joinCommandLine(a)) equals a. */
export function joinCommandLine(argv: string[]): string {
  return argv
    .map((a) => (a !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/** Splits a line, and treats a line that holds shell syntax as `sh -c LINE`. */
export function commandArgv(line: string): string[] {
  const trimmed = line.trim();
  if (trimmed === '') return [];
  if (/[|&;<>()$`*?~]/.test(stripQuoted(trimmed))) return ['sh', '-c', trimmed];
  return splitCommandLine(trimmed);
}

function stripQuoted(s: string): string {
  // Single quotes make everything literal; double quotes still expand $ and `.
  return s
    .replace(/'[^']*'/g, "''")
    .replace(/"(\\.|[^"\\])*"/g, (m) => '"' + m.replace(/[^$`]/g, '') + '"');
}
