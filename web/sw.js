// @ts-check
// The offline shell: the app's own files are kept in the browser, so with
// the box unreachable the app still opens and says so. Which files they
// are, the box says (/app/shell.json, from the files built into it). The
// network comes first (an updated box serves its new app at once); the
// API is never cached: only the box decides a ticket.
const CACHE = "venuebox-shell";
const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));

sw.addEventListener("install", (event) => {
  event.waitUntil(
    fetch("/app/shell.json", { cache: "no-store" })
      .then((r) => r.json())
      .then((/** @type {{files: string[]}} */ shell) => caches.open(CACHE).then((c) => c.addAll(shell.files)))
      .then(() => sw.skipWaiting()),
  );
});

sw.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => sw.clients.claim()),
  );
});

sw.addEventListener("fetch", (event) => {
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
      .catch(() => caches.match(url.pathname, { ignoreVary: true }).then((r) => r || Response.error())),
  );
});
