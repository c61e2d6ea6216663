import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineDiscipline, OutputConverter, exitMessage, toTerminalText } from '../logic/terminal';

test('newlines become CRLF', () => {
  assert.equal(toTerminalText('a\nb\n'), 'a\r\nb\r\n');
  assert.equal(toTerminalText('a\r\nb'), 'a\r\nb');
  assert.equal(toTerminalText('\n\n'), '\r\n\r\n');
  assert.equal(toTerminalText('progress\rdone\n'), 'progress\rdone\r\n');
  assert.equal(toTerminalText(''), '');
});

test('CRLF split across pieces is not doubled', () => {
  const c = new OutputConverter();
  assert.equal(c.convert('a\r'), 'a\r');
  assert.equal(c.convert('\nb\n'), '\nb\r\n');
  assert.equal(c.convert('\n'), '\r\n');
});

test('line discipline echoes and sends lines', () => {
  const ld = new LineDiscipline();
  let a = ld.feed('hel');
  assert.equal(a.echo, 'hel');
  assert.deepEqual(a.send, []);
  a = ld.feed('lo\r');
  assert.equal(a.echo, 'lo\r\n');
  assert.deepEqual(a.send, ['hello\n']);
  a = ld.feed('ab\x7fc\r');
  assert.deepEqual(a.send, ['ac\n']);
  assert.equal(a.echo, 'ab\b \bc\r\n');
  a = ld.feed('one\rtwo\r');
  assert.deepEqual(a.send, ['one\n', 'two\n']);
});

test('control keys', () => {
  const ld = new LineDiscipline();
  assert.equal(ld.feed('\x7f').echo, ''); // nothing to erase
  assert.equal(ld.feed('\x04').eof, true);
  ld.feed('abc');
  const u = ld.feed('\x15');
  assert.equal(u.echo, '\b \b'.repeat(3));
  assert.equal(ld.pending, '');
  ld.feed('x');
  const c = ld.feed('\x03');
  assert.equal(c.interrupt, true);
  assert.equal(ld.pending, '');
  ld.feed('partial');
  const d = ld.feed('\x04');
  assert.equal(d.eof, false);
  assert.deepEqual(d.send, ['partial']);
  assert.equal(ld.feed('\x1b[A\x1b[D').echo, ''); // arrows ignored
  const e = ld.feed('é\x7f');
  assert.equal(ld.pending, '');
  assert.equal(e.echo, 'é\b \b');
});

test('exitMessage', () => {
  assert.equal(exitMessage({ code: 0 }), '[process exited with code 0]');
  assert.equal(exitMessage({ code: 130, signal: 'SIGINT' }), '[process killed by SIGINT (exit code 130)]');
  assert.match(exitMessage({ code: -1, reason: 'agent connection lost' }), /agent connection lost/);
});
