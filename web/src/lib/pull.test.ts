import { expect, test } from 'vitest';
import { classifyPull } from './pull';

const ACK = '$JS.ACK.KEZ_INBOX.abc_0123456789abcdef.';
const status = (code: number, description: string) => classifyPull({ code, description, reply: '', dataLength: 0 }, ACK);

test('status messages of a pull request (PROTOCOL.md §9.4)', () => {
  expect(status(100, 'Idle Heartbeat')).toEqual({ t: 'heartbeat' });
  expect(status(404, 'No Messages')).toEqual({ t: 'end', why: '404 No Messages' });
  expect(status(408, 'Request Timeout')).toEqual({ t: 'end', why: '408 Request Timeout' });
  expect(status(409, 'Consumer Deleted')).toEqual({ t: 'consumer_gone', why: '409 Consumer Deleted' });
  expect(status(503, '')).toEqual({ t: 'consumer_gone', why: '503' });
  for (const d of ['Exceeded MaxWaiting', 'Leadership Change', 'Message Size Exceeds MaxBytes', 'Consumer is push based']) {
    expect(status(409, d)).toEqual({ t: 'retry_later', why: `409 ${d}` });
  }
  expect(status(400, 'Bad Request')).toEqual({ t: 'retry_later', why: '400 Bad Request' });
});

test('stored messages are handed over only with an ack subject of this consumer', () => {
  expect(classifyPull({ code: 0, description: '', reply: `${ACK}1.5.5.1760000000000000000.0`, dataLength: 120 }, ACK)).toEqual({ t: 'message' });
  expect(classifyPull({ code: 0, description: '', reply: '$JS.ACK.KEZ_INBOX.other_0123456789abcdef.1.5.5.1.0', dataLength: 120 }, ACK)).toEqual({ t: 'stray' });
  expect(classifyPull({ code: 0, description: '', reply: '', dataLength: 120 }, ACK)).toEqual({ t: 'stray' });
});
