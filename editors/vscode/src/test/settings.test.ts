import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initializationOptions, parseTcpAddress, serverCommand } from '../logic/settings';

test('initializationOptions keeps only set values', () => {
  assert.deepEqual(initializationOptions({}), {});
  assert.deepEqual(initializationOptions({ backend: '', image: '  ' }), {});
  assert.deepEqual(initializationOptions({ backend: 'incus', image: 'debian:bookworm-slim' }), {
    backend: 'incus',
    image: 'debian:bookworm-slim',
  });
  assert.deepEqual(initializationOptions({ backend: ' docker ' }), { backend: 'docker' });
});

test('initializationOptions sends trust only for a trusted workspace', () => {
  assert.deepEqual(initializationOptions({}, false), {});
  assert.deepEqual(initializationOptions({ image: 'x' }, true), { image: 'x', trust: true });
});

test('serverCommand defaults to berth --stdio', () => {
  assert.deepEqual(serverCommand({}), { command: 'berth', args: ['--stdio'] });
  assert.deepEqual(serverCommand({ path: '' }), { command: 'berth', args: ['--stdio'] });
  assert.deepEqual(serverCommand({ path: '/opt/berth/bin/berth' }), { command: '/opt/berth/bin/berth', args: ['--stdio'] });
});

test('parseTcpAddress', () => {
  assert.equal(parseTcpAddress(''), undefined);
  assert.equal(parseTcpAddress(undefined), undefined);
  assert.deepEqual(parseTcpAddress('127.0.0.1:7420'), { host: '127.0.0.1', port: 7420 });
  assert.deepEqual(parseTcpAddress('7420'), { host: '127.0.0.1', port: 7420 });
  assert.deepEqual(parseTcpAddress(':7420'), { host: '127.0.0.1', port: 7420 });
  assert.deepEqual(parseTcpAddress('localhost:1'), { host: 'localhost', port: 1 });
  assert.deepEqual(parseTcpAddress('[::1]:7420'), { host: '::1', port: 7420 });
  assert.deepEqual(parseTcpAddress('tcp://h:9'), { host: 'h', port: 9 });
  assert.throws(() => parseTcpAddress('host:'), /not HOST:PORT/);
  assert.throws(() => parseTcpAddress('host:abc'), /not HOST:PORT/);
  assert.throws(() => parseTcpAddress('h:70000'), /out of range/);
  assert.throws(() => parseTcpAddress('0'), /out of range/);
});
