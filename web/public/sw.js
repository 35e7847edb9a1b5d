// The offline app shell. A reload while the server is unreachable shows the app (which then says
// "Reconnecting…") instead of the browser's error page. Only the app's own files are cached: never /v1
// (the API) and never anything personal — that stays encrypted in IndexedDB.
const CACHE = 'kez-shell-v1';
const SHELL = '/';

/** index.html, the hashed files it loads, and the chunks its scripts import later (the NATS transport). */
async function cacheShell(res) {
  const cache = await caches.open(CACHE);
  const html = await res.clone().text();
  const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
  for (const js of assets.filter((a) => a.endsWith('.js'))) {
    const text = await fetch(js).then((r) => (r.ok ? r.text() : ''));
    for (const m of text.matchAll(/["'`](?:\.\/|\/?assets\/)([\w.-]+\.(?:js|css))["'`]/g)) {
      const a = `/assets/${m[1]}`;
      if (!assets.includes(a)) assets.push(a);
    }
  }
  await Promise.all(assets.map((a) => cache.match(a).then((hit) => hit || cache.add(a))));
  await cache.put(SHELL, res);
  // Drop files of older builds.
  for (const req of await cache.keys()) {
    const path = new URL(req.url).pathname;
    if (path.startsWith('/assets/') && !assets.includes(path)) await cache.delete(req);
  }
}

self.addEventListener('install', (e) => {
  e.waitUntil(
    fetch(SHELL, { cache: 'no-cache' })
      .then((res) => (res.ok ? cacheShell(res) : undefined))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (e) => {
  e.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (e) => {
  const req = e.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin || url.pathname.startsWith('/v1/') || url.pathname.startsWith('/.well-known/')) return;
  if (req.mode === 'navigate') {
    // Network first, so a new build is picked up at once; the cached shell when the server is unreachable.
    e.respondWith(
      fetch(req)
        .then((res) => {
          if (res.ok && url.pathname === '/') e.waitUntil(cacheShell(res.clone()));
          return res;
        })
        .catch(async () => (await caches.match(SHELL)) || Response.error()),
    );
    return;
  }
  if (url.pathname.startsWith('/assets/')) {
    // Content-hashed: a cached copy is always right; what is fetched is kept for the next outage.
    e.respondWith(
      caches.match(req).then(
        (hit) =>
          hit ||
          fetch(req).then((res) => {
            if (res.ok) {
              const copy = res.clone();
              e.waitUntil(caches.open(CACHE).then((c) => c.put(req, copy)));
            }
            return res;
          }),
      ),
    );
  }
});
