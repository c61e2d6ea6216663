// The berth.languageServers setting → one `berth lsp -- SERVER` language
// client per entry.

import type { BerthSettings, ServerCommand } from './settings';

/** One entry of berth.languageServers. */
export interface LanguageServerEntry {
  /** VS Code language ids the server serves, e.g. ["python"]. */
  languages: string[];
  /** The server's command line in the container, e.g. ["pylsp"]. */
  command: string[];
  /** A name for the output channel; default: the command's first word. */
  name?: string;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string' && s.trim() !== '');
}

/**
 * Reads berth.languageServers: the valid entries, and a message for each
 * invalid one (which is left out), so that one bad entry doesn't stop the
 * others.
 */
export function parseLanguageServers(value: unknown): { entries: LanguageServerEntry[]; errors: string[] } {
  const entries: LanguageServerEntry[] = [];
  const errors: string[] = [];
  if (value === undefined || value === null) return { entries, errors };
  if (!Array.isArray(value)) {
    return { entries, errors: ['berth.languageServers: expected an array of {"languages": [...], "command": [...]}'] };
  }
  value.forEach((e, i) => {
    const where = `berth.languageServers[${i}]`;
    if (typeof e !== 'object' || e === null) {
      errors.push(`${where}: expected an object`);
      return;
    }
    const o = e as Record<string, unknown>;
    if (!isStringArray(o.languages) || o.languages.length === 0) {
      errors.push(`${where}.languages: expected a non-empty array of language ids, e.g. ["python"]`);
      return;
    }
    if (!isStringArray(o.command) || o.command.length === 0) {
      errors.push(`${where}.command: expected a non-empty array, the server's command line in the container, e.g. ["pylsp"]`);
      return;
    }
    const entry: LanguageServerEntry = { languages: o.languages.map((s) => s.trim()), command: [...o.command] };
    if (typeof o.name === 'string' && o.name.trim() !== '') entry.name = o.name.trim();
    entries.push(entry);
  });
  return { entries, errors };
}

/** The client's display name: berth: NAME. */
export function languageServerName(e: LanguageServerEntry): string {
  return `berth: ${e.name ?? e.command[0].split('/').pop()}`;
}

/**
 * The command line that runs an entry's server in the folder's container:
 * `berth --workspace FOLDER [--backend B] [--image I] [--trust] lsp --
 * COMMAND...`. The `--` keeps the server's own flags its own.
 */
export function lspCommand(s: BerthSettings, folder: string, e: LanguageServerEntry, trusted = false): ServerCommand {
  const command = (s.path ?? '').trim() || 'berth';
  const args = ['--workspace', folder];
  const backend = (s.backend ?? '').trim();
  const image = (s.image ?? '').trim();
  if (backend !== '') args.push('--backend', backend);
  if (image !== '') args.push('--image', image);
  if (trusted) args.push('--trust');
  args.push('lsp', '--', ...e.command);
  return { command, args };
}

/** The documents an entry's client serves: files of its languages. */
export function documentSelector(e: LanguageServerEntry): { scheme: string; language: string }[] {
  return e.languages.map((language) => ({ scheme: 'file', language }));
}
