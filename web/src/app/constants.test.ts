import { expect, test } from 'vitest';
import { cliFetchCommand } from './constants';

test('CLI fetch command: handle then entry id; an id starting with "-" is not taken for an option', () => {
  expect(cliFetchCommand('@bob', 'YWFhYWFhYWFhYWFhYWFhYQ')).toBe('kez-chat fetch @bob YWFhYWFhYWFhYWFhYWFhYQ');
  expect(cliFetchCommand('@bob', '-WFhYWFhYWFhYWFhYWFhYQ')).toBe('kez-chat fetch @bob -- -WFhYWFhYWFhYWFhYWFhYQ');
});
