import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DebugConfigError,
  SESSION_KEY,
  buildDebugParams,
  debugpyAttachConfig,
  debugpyBerthParams,
  delveBerthParams,
  fillDelveConfig,
  defaultLaunchConfig,
  fillDebugpyConfig,
  pickAdapter,
  resolvedSessionConfig,
  serverAddress,
} from '../logic/debug';
import type { DebugResult } from '../logic/wire';

const debugpyResult: DebugResult = {
  pid: 'p7',
  host: '127.0.0.1',
  port: 40123,
  tunnelId: 't3',
  attach: {
    type: 'debugpy',
    request: 'attach',
    name: 'berth: app.py',
    connect: { host: '127.0.0.1', port: 40123 },
    pathMappings: [{ localRoot: '/home/me/src/pyproj', remoteRoot: '/workspaces/pyproj' }],
    justMyCode: true,
    cwd: '/workspaces/pyproj',
  },
};

test('buildDebugParams from a launch config', () => {
  const p = buildDebugParams(
    {
      type: 'berth',
      request: 'launch',
      name: 'x',
      adapter: 'debugpy',
      program: '/home/me/src/pyproj/app.py',
      args: ['--n', '3'],
      cwd: '/home/me/src/pyproj',
      env: { A: '1', B: 2, C: null },
      justMyCode: false,
      stopOnEntry: true,
      port: 5679,
    },
    '/home/me/src/pyproj',
  );
  assert.deepEqual(p, {
    adapter: 'debugpy',
    workspace: '/home/me/src/pyproj',
    program: '/home/me/src/pyproj/app.py',
    args: ['--n', '3'],
    cwd: '/home/me/src/pyproj',
    env: { A: '1', B: '2' },
    stopOnEntry: true,
    justMyCode: false,
    port: 5679,
  });
});

test('buildDebugParams: string args, module, connectBack, custom', () => {
  assert.deepEqual(buildDebugParams({ module: 'http.server', args: '8000 --bind "0.0.0.0"' }), {
    adapter: 'debugpy',
    module: 'http.server',
    args: ['8000', '--bind', '0.0.0.0'],
  });
  assert.deepEqual(buildDebugParams({ program: 'a.py', connectBack: 50000 }).connectBack, { hostPort: 50000 });
  assert.deepEqual(buildDebugParams({ program: 'a.py', connectBack: { hostPort: 1 } }).connectBack, { hostPort: 1 });
  assert.deepEqual(buildDebugParams({ adapter: 'custom', command: 'srv --port {port}' }).command, ['srv', '--port', '{port}']);
  assert.deepEqual(buildDebugParams({ adapter: 'delve' }), { adapter: 'delve' });
});

test('buildDebugParams rejects bad configs', () => {
  assert.throws(() => buildDebugParams({ adapter: 'gdb', program: 'a' }), DebugConfigError);
  assert.throws(() => buildDebugParams({ adapter: 'debugpy' }), /program or a module/);
  assert.throws(() => buildDebugParams({ program: 'a.py', module: 'm' }), /either/);
  assert.throws(() => buildDebugParams({ program: 'a.py', port: 0 }), /port/);
  assert.throws(() => buildDebugParams({ program: 'a.py', connectBack: 70000 }), /connectBack/);
  assert.throws(() => buildDebugParams({ adapter: 'custom' }), /command/);
  assert.throws(() => buildDebugParams({ program: 'a.py', args: [1 as unknown as string] }), /args/);
});

test('pickAdapter', () => {
  assert.equal(pickAdapter({ program: 'main.go' }), 'delve');
  assert.equal(pickAdapter({ program: 'a.py' }), 'debugpy');
  assert.equal(pickAdapter({ command: ['x'] }), 'custom');
  assert.equal(pickAdapter({ adapter: 'delve', program: 'a.py' }), 'delve');
});

test('resolvedSessionConfig merges attach and records the session', () => {
  const cfg = { type: 'berth', request: 'launch', name: 'Debug app', program: '/h/app.py', args: ['x'], presentation: { group: 'g' } };
  const out = resolvedSessionConfig(cfg, debugpyResult, 'debugpy');
  assert.equal(out.type, 'berth');
  assert.equal(out.request, 'attach');
  assert.equal(out.name, 'Debug app');
  assert.deepEqual(out.pathMappings, [{ localRoot: '/home/me/src/pyproj', remoteRoot: '/workspaces/pyproj' }]);
  assert.equal(out.justMyCode, true);
  assert.equal(out.cwd, '/workspaces/pyproj');
  assert.equal(out.connect, undefined);
  assert.equal(out.program, undefined);
  assert.equal(out.args, undefined);
  assert.deepEqual(out.presentation, { group: 'g' });
  assert.deepEqual(out[SESSION_KEY], { pid: 'p7', tunnelId: 't3', host: '127.0.0.1', port: 40123, adapter: 'debugpy' });
});

test('resolvedSessionConfig for a delve launch keeps args and env', () => {
  const res: DebugResult = {
    pid: 'p8', host: '127.0.0.1', port: 4000, tunnelId: 't4',
    attach: { type: 'go', request: 'launch', mode: 'debug', program: '/workspaces/goproj', host: '127.0.0.1', port: 4000, substitutePath: [{ from: '/h/goproj', to: '/workspaces/goproj' }] },
  };
  const out = resolvedSessionConfig({ type: 'berth', request: 'launch', name: 'go', adapter: 'delve', args: ['-v'], env: { X: '1' } }, res, 'delve');
  assert.equal(out.request, 'launch');
  assert.equal(out.mode, 'debug');
  assert.equal(out.program, '/workspaces/goproj');
  assert.deepEqual(out.args, ['-v']);
  assert.deepEqual(out.env, { X: '1' });
  assert.equal(out.host, undefined);
  assert.equal(out.port, undefined);
});

test('resolvedSessionConfig needs attach', () => {
  assert.throws(() => resolvedSessionConfig({}, { pid: 'p1', tunnelId: 't1', connectBack: { containerHost: '127.0.0.1', containerPort: 1 } }, 'debugpy'), DebugConfigError);
});

test('serverAddress', () => {
  assert.deepEqual(serverAddress({ port: 1 }), { host: '127.0.0.1', port: 1 });
  assert.deepEqual(serverAddress({ host: '::1', port: 2 }), { host: '::1', port: 2 });
  assert.throws(() => serverAddress({}), /no port/);
});

test('debugpy attach config from berth/debug', () => {
  const c = debugpyAttachConfig({ ...debugpyResult, port: 41000 });
  assert.equal(c.type, 'debugpy');
  assert.equal(c.request, 'attach');
  assert.equal(c.name, 'berth: app.py');
  assert.deepEqual(c.connect, { host: '127.0.0.1', port: 41000 });
  assert.deepEqual(c.pathMappings, [{ localRoot: '/home/me/src/pyproj', remoteRoot: '/workspaces/pyproj' }]);
});

test('fillDebugpyConfig keeps user values', () => {
  const out = fillDebugpyConfig({ type: 'debugpy', request: 'attach', name: 'mine', berth: { program: 'a.py' }, justMyCode: false }, debugpyResult);
  assert.equal(out.name, 'mine');
  assert.equal(out.berth, undefined);
  assert.equal(out.justMyCode, false);
  assert.deepEqual(out.connect, { host: '127.0.0.1', port: 40123 });
  assert.equal((out.pathMappings as unknown[]).length, 1);
  const own = fillDebugpyConfig({ berth: true, pathMappings: [{ localRoot: '/a', remoteRoot: '/b' }] }, debugpyResult);
  assert.deepEqual(own.pathMappings, [{ localRoot: '/a', remoteRoot: '/b' }]);
});

test('debugpyBerthParams', () => {
  assert.deepEqual(debugpyBerthParams(true, '/h/a.py', '/h'), { adapter: 'debugpy', workspace: '/h', program: '/h/a.py' });
  assert.deepEqual(debugpyBerthParams({ module: 'pkg', adapter: 'delve' }), { adapter: 'debugpy', module: 'pkg' });
  assert.throws(() => debugpyBerthParams('x'), DebugConfigError);
});

test('defaultLaunchConfig', () => {
  assert.equal(defaultLaunchConfig('python', '/h/a.py')?.adapter, 'debugpy');
  assert.equal(defaultLaunchConfig('go', '/h/cmd/main.go')?.cwd, '/h/cmd');
  assert.equal(defaultLaunchConfig('rust', '/h/a.rs'), undefined);
  assert.equal(defaultLaunchConfig('python', undefined), undefined);
});

test('delve attach configurations carrying "berth"', () => {
  assert.deepEqual(delveBerthParams(true, '/w/calc/calc.go', '/w'), { adapter: 'delve', workspace: '/w', program: '/w/calc' });
  assert.deepEqual(delveBerthParams({ test: true, tests: ['ex.com/calc.TestAdd'] }), { adapter: 'delve', test: true, tests: ['ex.com/calc.TestAdd'] });
  assert.throws(() => delveBerthParams({}), /program .* or test: true/);
  assert.throws(() => delveBerthParams(true), /open a Go file/);
  const res = {
    pid: 'p3', tunnelId: 't2', host: '127.0.0.1', port: 41000,
    attach: { type: 'go', request: 'attach', mode: 'remote', name: 'berth: calc', host: '127.0.0.1', port: 41000, substitutePath: [{ from: '/w', to: '/workspaces/w' }] },
  };
  const cfg = fillDelveConfig({ type: 'go', request: 'attach', name: 'mine', berth: true }, res);
  assert.equal(cfg.berth, undefined);
  assert.equal(cfg.name, 'mine');
  assert.equal(cfg.port, 41000);
  assert.equal(cfg.mode, 'remote');
  assert.deepEqual(cfg.substitutePath, [{ from: '/w', to: '/workspaces/w' }]);
  assert.deepEqual((cfg.__berth as { adapter: string }).adapter, 'delve');
  const own = fillDelveConfig({ substitutePath: [{ from: 'a', to: 'b' }], berth: true }, res);
  assert.deepEqual(own.substitutePath, [{ from: 'a', to: 'b' }]);
});

test('a berth launch configuration can debug tests', () => {
  assert.deepEqual(buildDebugParams({ adapter: 'debugpy', test: true, tests: ['t.py::test_a'] }), { adapter: 'debugpy', test: true, tests: ['t.py::test_a'] });
  assert.throws(() => buildDebugParams({ adapter: 'custom', command: ['x'], test: true }), /debugpy or delve/);
});
