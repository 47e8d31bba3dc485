// The offline shell: the app's own files are kept in the browser, so with
// the box unreachable the app still opens and says so. The network comes
// first (an updated box serves its new app at once); the API is never
// cached: only the box decides a ticket.
const CACHE = "venuebox-shell-v3";
const SHELL = [
  "/", "/app/app.js", "/app/strings.js", "/app/app.css", "/app/ui.js", "/app/door.js", "/app/merch.js",
  "/app/capture.js", "/app/sha256.js", "/app/dashboard.js", "/app/admin.js", "/app/vendor/tus.min.js",
  "/app/camera.js", "/app/qr-worker.js", "/app/vendor/jsQR.js", "/app/manifest.webmanifest", "/app/icons/icon-192.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const shell = event.request.method === "GET" && url.origin === location.origin &&
    (url.pathname === "/" || url.pathname.startsWith("/app/"));
  if (!shell) return;
  event.respondWith(
    fetch(event.request)
      .then((r) => {
        if (r.ok) {
          const copy = r.clone();
          caches.open(CACHE).then((c) => c.put(url.pathname, copy));
        }
        return r;
      })
      // The box answers with Vary: Origin (CORS); a module script's request
      // carries an Origin the cached copy was not fetched with.
      .catch(() => caches.match(url.pathname === "/" ? "/" : url.pathname, { ignoreVary: true })),
  );
});
