import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProcessRouter, ProcessSink } from '../logic/router';
import type { ExitParams } from '../logic/wire';

function recorder() {
  const out: string[] = [];
  const exits: ExitParams[] = [];
  const sink: ProcessSink = { output: (s, t) => out.push(`${s}:${t}`), exit: (p) => exits.push(p) };
  return { out, exits, sink };
}

test('claimed pids get their events', () => {
  const r = new ProcessRouter();
  const a = recorder();
  r.claim('p1', a.sink);
  r.output({ pid: 'p1', stream: 'stdout', text: 'hi\n' });
  r.output({ pid: 'p2', stream: 'stdout', text: 'other' });
  r.exit({ pid: 'p1', code: 0 });
  assert.deepEqual(a.out, ['stdout:hi\n']);
  assert.deepEqual(a.exits, [{ pid: 'p1', code: 0 }]);
  assert.equal(r.isClaimed('p1'), false);
});

test('early output and exit are replayed on claim', () => {
  const seen: string[] = [];
  const r = new ProcessRouter({ unclaimed: (pid, ev) => seen.push(`${pid}:${ev.text ?? 'exit'}`) });
  r.output({ pid: 'p4', stream: 'stdout', text: 'a' });
  r.output({ pid: 'p4', stream: 'stderr', text: 'b' });
  r.exit({ pid: 'p4', code: 1 });
  assert.deepEqual(seen, ['p4:a', 'p4:b', 'p4:exit']);
  const a = recorder();
  assert.equal(r.claim('p4', a.sink), 0);
  assert.deepEqual(a.out, ['stdout:a', 'stderr:b']);
  assert.deepEqual(a.exits, [{ pid: 'p4', code: 1 }]);
  assert.equal(r.isClaimed('p4'), false);
});

test('early output without exit keeps routing after claim', () => {
  const r = new ProcessRouter();
  r.output({ pid: 'p1', stream: 'stdout', text: 'a' });
  const a = recorder();
  r.claim('p1', a.sink);
  r.output({ pid: 'p1', stream: 'stdout', text: 'b' });
  assert.deepEqual(a.out, ['stdout:a', 'stdout:b']);
  assert.equal(r.isClaimed('p1'), true);
});

test('buffers are bounded', () => {
  const r = new ProcessRouter({ maxBytesPerPid: 4, maxPids: 2 });
  r.output({ pid: 'p1', stream: 'stdout', text: 'aaa' });
  r.output({ pid: 'p1', stream: 'stdout', text: 'bbb' });
  const a = recorder();
  assert.equal(r.claim('p1', a.sink), 3);
  assert.deepEqual(a.out, ['stdout:bbb']);
  r.output({ pid: 'x1', stream: 'stdout', text: '1' });
  r.output({ pid: 'x2', stream: 'stdout', text: '2' });
  r.output({ pid: 'x3', stream: 'stdout', text: '3' });
  const b = recorder();
  r.claim('x1', b.sink); // forgotten
  assert.deepEqual(b.out, []);
  const c = recorder();
  r.claim('x3', c.sink);
  assert.deepEqual(c.out, ['stdout:3']);
});

test('reset ends every sink', () => {
  const r = new ProcessRouter();
  const a = recorder();
  r.claim('p1', a.sink);
  r.reset('berth stopped');
  assert.deepEqual(a.exits, [{ pid: 'p1', code: -1, reason: 'berth stopped' }]);
  r.release('p1');
});
