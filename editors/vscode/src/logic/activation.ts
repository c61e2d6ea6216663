// When berth belongs in a window: the folder has a container
// configuration as berth discovers it (devcontainer/devcontainer.go), or
// berth.languageServers is set. package.json's activationEvents mirror
// CONFIG_PATTERNS; a berth command activates the extension anyway.

import * as fs from 'fs';
import * as path from 'path';

/** berth's configuration discovery, as workspaceContains patterns. */
export const CONFIG_PATTERNS = [
  '.devcontainer/devcontainer.json',
  '.devcontainer.json',
  '.devcontainer/*/devcontainer.json',
  'Containerfile',
  'Dockerfile',
];

/**
 * The activation events package.json must declare: the configurations,
 * a folder's own settings (where berth.languageServers may be), the debug
 * type, the terminal profile, and every command.
 */
export function activationEvents(commands: string[]): string[] {
  return [
    ...CONFIG_PATTERNS.map((p) => `workspaceContains:${p}`),
    'workspaceContains:.vscode/settings.json',
    'onDebugResolve:berth',
    'onDebugDynamicConfigurations:berth',
    'onTerminalProfile:berth.shell',
    ...commands.map((c) => `onCommand:${c}`),
  ];
}

/** Whether a host folder has a configuration berth would use. */
export function folderHasConfig(dir: string, exists: (p: string) => boolean = fs.existsSync, list: (p: string) => string[] = listDirs): boolean {
  for (const p of CONFIG_PATTERNS) {
    if (!p.includes('*') && exists(path.join(dir, p))) return true;
  }
  for (const name of list(path.join(dir, '.devcontainer'))) {
    if (exists(path.join(dir, '.devcontainer', name, 'devcontainer.json'))) return true;
  }
  return false;
}

function listDirs(dir: string): string[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}

/**
 * Whether to start berth as soon as the extension activates: only for a
 * folder berth belongs in. Otherwise (activated by a folder's settings
 * file, say) berth starts with the first berth command.
 */
export function startEagerly(folders: string[], languageServers: unknown, hasConfig: (dir: string) => boolean = (d) => folderHasConfig(d)): boolean {
  if (Array.isArray(languageServers) && languageServers.length > 0) return true;
  return folders.some((f) => hasConfig(f));
}
