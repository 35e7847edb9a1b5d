import { mount } from 'svelte';
import './app.css';
import App from './App.svelte';
import { initTheme } from './app/theme';

initTheme();
const target = document.getElementById('app');
if (!target) throw new Error('missing #app');
export default mount(App, { target });

// The offline app shell: a reload during an outage still shows the app (production builds only; see public/sw.js).
if (import.meta.env.PROD && 'serviceWorker' in navigator) {
  void navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((e) => console.warn('service worker not registered:', e));
}
