import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { folderHasConfig, startEagerly } from '../logic/activation';

test('folderHasConfig follows berth\'s discovery, named configs included', () => {
  const cases: [string, string[], boolean][] = [
    ['devcontainer.json', ['.devcontainer/devcontainer.json'], true],
    ['.devcontainer.json', ['.devcontainer.json'], true],
    ['a named config', ['.devcontainer/python/devcontainer.json'], true],
    ['Containerfile', ['Containerfile'], true],
    ['Dockerfile', ['Dockerfile'], true],
    ['an empty .devcontainer', ['.devcontainer/README.md'], false],
    ['nothing', ['main.py'], false],
  ];
  for (const [name, files, want] of cases) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-act-'));
    try {
      for (const f of files) {
        fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
        fs.writeFileSync(path.join(dir, f), '{}');
      }
      assert.equal(folderHasConfig(dir), want, name);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('startEagerly: a configured folder or language servers', () => {
  assert.equal(startEagerly(['/a', '/b'], [], (d) => d === '/b'), true);
  assert.equal(startEagerly(['/a'], [], () => false), false);
  assert.equal(startEagerly([], [{ languages: ['python'], command: ['pylsp'] }], () => false), true);
  assert.equal(startEagerly(['/a'], undefined, () => false), false);
});
