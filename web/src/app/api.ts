import { Api } from '../lib/api';

/** The gateway is the same origin that served the app. */
export const api = new Api('');
