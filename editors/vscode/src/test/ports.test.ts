import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AutoForwardTracker, PortsModel, notifyText, portRows, portUrl, showDocumentAction } from '../logic/ports';
import type { Port, TunnelInfo } from '../logic/wire';

const fwd = (id: string, containerPort: number, hostPort: number, auto = false): TunnelInfo => ({
  tunnelId: id, workspace: '/w', direction: 'forward', host: '127.0.0.1', hostPort, containerHost: '127.0.0.1', containerPort, active: 0, auto,
});

test('portUrl', () => {
  assert.equal(portUrl('127.0.0.1', 8000), 'http://localhost:8000');
  assert.equal(portUrl(undefined, 1), 'http://localhost:1');
  assert.equal(portUrl('::1', 9), 'http://[::1]:9');
});

test('portRows: detected ports with their forwards, then other forwards', () => {
  const ports: Port[] = [
    { port: 8000, bindAddress: '0.0.0.0', label: 'web', onAutoForward: 'notify', tunnelId: 't1', hostPort: 8000, process: { pid: 42, name: 'python3' } },
    { port: 5432, bindAddress: '127.0.0.1', onAutoForward: 'ignore' },
    { port: 3000, bindAddress: '::', onAutoForward: 'silent' },
  ];
  const rows = portRows(ports, [fwd('t1', 8000, 8000, true), fwd('t2', 3000, 40001), fwd('t3', 9999, 9999), { ...fwd('t4', 1, 1), direction: 'reverse' }]);
  assert.deepEqual(rows.map((r) => [r.key, r.label, r.state, r.hostPort, r.tunnelId, r.auto]), [
    ['port:3000', '3000', 'forwarded', 40001, 't2', false],
    ['port:5432', '5432', 'detected', undefined, undefined, undefined],
    ['port:8000', 'web (8000)', 'forwarded', 8000, 't1', true],
    ['tunnel:t3', '9999', 'forwarded', 9999, 't3', false],
  ]);
  assert.match(rows[2].description, /→ http:\/\/localhost:8000 {2}python3 \(pid 42\)/);
  assert.match(rows[1].tooltip, /onAutoForward: ignore/);
  assert.deepEqual(portRows(null, null), []);
});

test('auto-forwards act once, as onAutoForward says', () => {
  const t = new AutoForwardTracker();
  const p = (port: number, onAutoForward: string, tunnelId?: string): Port => ({ port, bindAddress: '0.0.0.0', onAutoForward, tunnelId, hostPort: tunnelId ? port : undefined });
  const first = t.changes({ workspace: '/w', ports: [p(1, 'notify', 'a'), p(2, 'openBrowser', 'b'), p(3, 'openBrowserOnce', 'c'), p(4, 'openPreview', 'd'), p(5, 'silent', 'e'), p(6, 'ignore'), p(7, 'notify')] });
  assert.deepEqual(first.map((a) => [a.kind, a.port.port, a.url]), [
    ['notify', 1, 'http://localhost:1'],
    ['openBrowser', 2, 'http://localhost:2'],
    ['openBrowser', 3, 'http://localhost:3'],
    ['openPreview', 4, 'http://localhost:4'],
  ]);
  // The same forwards again: nothing new.
  assert.deepEqual(t.changes({ workspace: '/w', ports: [p(1, 'notify', 'a'), p(2, 'openBrowser', 'b'), p(3, 'openBrowserOnce', 'c')] }), []);
  // Listening anew, with new forwards: openBrowserOnce stays quiet.
  assert.deepEqual(t.changes({ workspace: '/w', ports: [p(2, 'openBrowser', 'b2'), p(3, 'openBrowserOnce', 'c2')] }).map((a) => a.port.port), [2]);
  // Another workspace is its own.
  assert.equal(t.changes({ workspace: '/v', ports: [p(3, 'openBrowserOnce', 'x')] }).length, 1);
  assert.match(notifyText(first[0]), /Port 1.*http:\/\/localhost:1/);
});

test('window/showDocument: http(s) opens outside, other schemes are refused', () => {
  assert.equal(showDocumentAction({ uri: 'http://localhost:8000/x', external: true }), 'openExternal');
  assert.equal(showDocumentAction({ uri: 'HTTPS://example.org', external: true }), 'openExternal');
  assert.equal(showDocumentAction({ uri: 'file:///etc/passwd', external: true }), 'refuse');
  assert.equal(showDocumentAction({ uri: 'file:///w/a.py' }), 'default');
});

test('PortsModel asks berth/ports, forwards and stops', async () => {
  const calls: [string, object][] = [];
  const model = new PortsModel({
    async request<R>(method: string, params: object): Promise<R> {
      calls.push([method, params]);
      if (method === 'berth/ports') return { ports: [{ port: 8000, bindAddress: '0.0.0.0', onAutoForward: 'notify' }], forwards: [] } as R;
      if (method === 'berth/forward') return { tunnelId: 't9', host: '127.0.0.1', hostPort: 8000 } as R;
      return null as R;
    },
  }, '/w');
  assert.equal((await model.refresh()).length, 1);
  await model.forward(8000);
  await model.stop('t9');
  assert.deepEqual(calls.map((c) => c[0]), ['berth/ports', 'berth/forward', 'berth/ports', 'berth/closeTunnel', 'berth/ports']);
  assert.deepEqual(calls[1][1], { workspace: '/w', containerPort: 8000 });
  assert.deepEqual(calls[3][1], { tunnelId: 't9' });
});
