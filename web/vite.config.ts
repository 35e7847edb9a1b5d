/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import tailwindcss from '@tailwindcss/vite';

// The gateway serves the built SPA and /v1 from one origin. In development the
// Vite server proxies /v1 (and the NATS WebSocket path, if the gateway offers
// one) to the gateway named by KEZ_GATEWAY (default: a local `kez up`).
const gateway = process.env.KEZ_GATEWAY ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [tailwindcss(), svelte()],
  server: {
    host: '127.0.0.1',
    proxy: {
      '/v1': { target: gateway, changeOrigin: true },
    },
  },
  build: {
    target: 'es2022',
    sourcemap: false,
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts'],
    testTimeout: 30_000,
    // Node 20 has no global WebSocket; nats-core's wsconnect needs it in the transport test.
    execArgv: typeof WebSocket === 'undefined' ? ['--experimental-websocket'] : [],
  },
});
