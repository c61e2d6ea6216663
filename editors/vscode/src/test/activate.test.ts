// Smoke test of the VS Code wiring: loads the extension against a stand-in
// `vscode` module and checks that activation registers every contributed
// command (and nothing uncontributed), without starting berth.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
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
  assert.deepEqual(pkg.activationEvents.slice(0, 2), ['onStartupFinished', 'workspaceContains:.devcontainer/devcontainer.json']);
  const props = Object.keys(pkg.contributes.configuration.properties).sort();
  assert.deepEqual(props, ['berth.backend', 'berth.image', 'berth.languageServers', 'berth.path', 'berth.tcp', 'berth.tokenFile', 'berth.trace.server']);
  const dbg = pkg.contributes.debuggers[0];
  assert.equal(dbg.type, 'berth');
  for (const k of ['adapter', 'program', 'module', 'args', 'cwd', 'env', 'justMyCode', 'port', 'connectBack']) {
    assert.ok(k in dbg.configurationAttributes.launch.properties, k);
  }
});
