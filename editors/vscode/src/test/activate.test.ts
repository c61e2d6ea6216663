// Smoke test of the VS Code wiring: loads the extension against a stand-in
// `vscode` module and checks that activation registers every contributed
// command (and nothing uncontributed), without starting berth.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { activationEvents } from '../logic/activation';
// eslint-disable-next-line @typescript-eslint/no-var-requires
const Module = require('module');

function stub(overrides: Record<string | symbol, unknown> = {}): any {
  const fn = function () {
    return stub();
  };
  const props: Record<string | symbol, unknown> = { ...overrides };
  return new Proxy(fn, {
    set(_t, prop, value) {
      props[prop] = value;
      return true;
    },
    get(_t, prop) {
      if (prop in props) return props[prop];
      if (prop === 'then' || prop === Symbol.toPrimitive || prop === Symbol.iterator) return undefined;
      return stub();
    },
    apply() {
      return stub();
    },
    construct() {
      return stub();
    },
  });
}

test('activate registers the contributed commands', () => {
  const registered: string[] = [];
  const fakeVscode = stub({
    commands: stub({
      registerCommand: (id: string) => {
        registered.push(id);
        return { dispose() {} };
      },
    }),
    workspace: stub({ workspaceFolders: undefined }),
  });
  const origLoad = Module._load;
  Module._load = function (request: string, ...rest: unknown[]) {
    if (request === 'vscode') return fakeVscode;
    return origLoad.call(this, request, ...rest);
  };
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const ext = require('../extension');
    const subs: unknown[] = [];
    ext.activate({ subscriptions: subs, workspaceState: stub() });
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'));
    const contributed = (pkg.contributes.commands as { command: string; title: string }[]).map((c) => c.command);
    assert.deepEqual([...registered].sort(), [...contributed].sort());
    for (const c of pkg.contributes.commands) assert.match(c.title, /^berth: /);
    assert.ok(subs.length > registered.length);
  } finally {
    Module._load = origLoad;
  }
});

test('package.json has what the marketplace and VS Code need', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'));
  assert.equal(pkg.name, 'berth');
  assert.equal(pkg.publisher, 'berthdev');
  assert.equal(pkg.main, './out/extension.js');
  // Activation: only where berth belongs (its configuration discovery, a
  // folder's settings for berth.languageServers) or on a berth command.
  const commands = (pkg.contributes.commands as { command: string }[]).map((c) => c.command);
  assert.deepEqual(pkg.activationEvents, activationEvents(commands));
  assert.ok(!pkg.activationEvents.includes('onStartupFinished') && !pkg.activationEvents.includes('*'));
  assert.equal(pkg.capabilities.untrustedWorkspaces.supported, 'limited');
  assert.ok(pkg.capabilities.untrustedWorkspaces.description);
  const icon = fs.readFileSync(path.join(__dirname, '..', '..', pkg.icon));
  assert.deepEqual([...icon.subarray(1, 4)], [...Buffer.from('PNG')]);
  assert.ok(icon.readUInt32BE(16) >= 128, 'the Marketplace wants an icon of at least 128 px');
  const views = pkg.contributes.views.explorer as { id: string; when: string }[];
  assert.deepEqual(views.map((v) => [v.id, v.when]), [['berth.ports', 'berth.active']]);
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
  for (const s of ['Test Explorer', 'Ports', 'delve', 'Restricted Mode']) assert.ok(readme.includes(s), `README mentions ${s}`);
  const props = Object.keys(pkg.contributes.configuration.properties).sort();
  assert.deepEqual(props, ['berth.backend', 'berth.image', 'berth.languageServers', 'berth.path', 'berth.tcp', 'berth.tokenFile', 'berth.trace.server']);
  const dbg = pkg.contributes.debuggers[0];
  assert.equal(dbg.type, 'berth');
  for (const k of ['adapter', 'program', 'module', 'args', 'cwd', 'env', 'justMyCode', 'port', 'connectBack']) {
    assert.ok(k in dbg.configurationAttributes.launch.properties, k);
  }
});
