// The service worker: keeps the page itself (index.html and its hashed assets) in the browser,
// so a reload while the server is down still shows the app, which then opens the note from
// the browser's copy (y-indexeddb). Notes and the API are never cached here.
const CACHE = 'coscribe-shell-v1'

self.addEventListener('install', () => self.skipWaiting())
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()))

// The page tells which assets it runs on (those loaded before this worker took control).
self.addEventListener('message', (event) => {
  const urls = (event.data && event.data.cache) || []
  const same = urls.filter((u) => new URL(u, self.location.origin).origin === self.location.origin)
  event.waitUntil(caches.open(CACHE).then((cache) => Promise.all(same.map(async (u) => {
    if (!(await cache.match(u))) await cache.add(u).catch(() => {})
  }))))
})

self.addEventListener('fetch', (event) => {
  const request = event.request
  const url = new URL(request.url)
  if (request.method !== 'GET' || url.origin !== self.location.origin) return
  if (url.pathname.startsWith('/assets/')) {
    // Hashed names never change: the cached copy first.
    event.respondWith(caches.open(CACHE).then(async (cache) => {
      const hit = await cache.match(request)
      if (hit) return hit
      const response = await fetch(request)
      if (response.ok) await cache.put(request, response.clone())
      return response
    }))
  } else if (request.mode === 'navigate' && (url.pathname === '/' || url.pathname === '/index.html')) {
    // The server's page when it answers (a new build at once), the kept one when it does not.
    event.respondWith(fetch(request).then(async (response) => {
      if (response.ok) await (await caches.open(CACHE)).put('/', response.clone())
      return response
    }).catch(async () => (await caches.match('/')) || Response.error()))
  }
})
