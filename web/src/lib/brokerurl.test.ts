import { expect, test } from 'vitest';
import { checkBrokerUrl } from './brokerurl';
import { expectCode } from './test/util';

test('wss:// anywhere; ws:// only to loopback', () => {
  for (const ok of ['wss://kez.lat/nats', 'wss://1.2.3.4:443', 'ws://127.0.0.1:8080', 'ws://127.1.2.3:1', 'ws://localhost:9222', 'ws://LOCALHOST:1', 'ws://[::1]:8080']) {
    expect(() => checkBrokerUrl(ok), ok).not.toThrow();
  }
  for (const bad of ['ws://kez.lat:8080', 'ws://10.0.0.1:80', 'ws://127.0.0.1.evil.example:80', 'ws://localhost.evil.example', 'ws://[::2]:80', 'http://kez.lat', 'nats://127.0.0.1:4222', 'not a url']) {
    expectCode(() => checkBrokerUrl(bad), 'insecure_broker');
  }
});
