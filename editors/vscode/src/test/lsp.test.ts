import { test } from 'node:test';
import assert from 'node:assert/strict';
import { documentSelector, languageServerName, lspCommand, parseLanguageServers } from '../logic/lsp';

test('parseLanguageServers takes the documented shape', () => {
  assert.deepEqual(parseLanguageServers([{ languages: ['python'], command: ['pylsp'] }]), {
    entries: [{ languages: ['python'], command: ['pylsp'] }],
    errors: [],
  });
  assert.deepEqual(parseLanguageServers(undefined), { entries: [], errors: [] });
  assert.deepEqual(parseLanguageServers([]), { entries: [], errors: [] });
  const named = parseLanguageServers([{ languages: ['go', 'gomod'], command: ['gopls', 'serve'], name: ' Go ' }]);
  assert.deepEqual(named.entries, [{ languages: ['go', 'gomod'], command: ['gopls', 'serve'], name: 'Go' }]);
});

test('parseLanguageServers reports bad entries and keeps the good ones', () => {
  const r = parseLanguageServers([
    { languages: ['python'], command: ['pylsp'] },
    { languages: 'python', command: ['pylsp'] },
    { languages: ['go'], command: [] },
    { languages: ['c'], command: ['clangd', ''] },
    'gopls',
  ]);
  assert.deepEqual(r.entries, [{ languages: ['python'], command: ['pylsp'] }]);
  assert.equal(r.errors.length, 4);
  assert.match(r.errors[0], /\[1\]\.languages/);
  assert.match(r.errors[1], /\[2\]\.command/);
  assert.match(r.errors[2], /\[3\]\.command/);
  assert.match(r.errors[3], /\[4\]: expected an object/);
  assert.match(parseLanguageServers({ languages: ['x'] }).errors[0], /expected an array/);
});

test('lspCommand runs berth lsp on the folder with the settings', () => {
  const e = { languages: ['python'], command: ['pylsp', '-v'] };
  assert.deepEqual(lspCommand({}, '/home/me/proj', e), {
    command: 'berth',
    args: ['--workspace', '/home/me/proj', 'lsp', '--', 'pylsp', '-v'],
  });
  assert.deepEqual(lspCommand({ path: '/opt/berth', backend: 'incus', image: ' debian:12 ' }, '/p', e, true), {
    command: '/opt/berth',
    args: ['--workspace', '/p', '--backend', 'incus', '--image', 'debian:12', '--trust', 'lsp', '--', 'pylsp', '-v'],
  });
});

test('documentSelector and name', () => {
  const e = { languages: ['go', 'gomod'], command: ['/usr/bin/gopls'] };
  assert.deepEqual(documentSelector(e), [
    { scheme: 'file', language: 'go' },
    { scheme: 'file', language: 'gomod' },
  ]);
  assert.equal(languageServerName(e), 'berth: gopls');
  assert.equal(languageServerName({ ...e, name: 'Go' }), 'berth: Go');
});
