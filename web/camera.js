// @ts-check
// The phone's camera as a QR reader, for the door and for the merch
// stand's buyer's ticket: the back camera in a <video>, and codes read
// continuously off the page's thread, inside the aiming frame.

/** Opens the back camera into `video`; its stream (stop its tracks to
 * close it). Throws when there is no camera or no permission. */
export async function openCamera(video) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  video.srcObject = stream;
  await video.play();
  return stream;
}

/** Reads QR codes from `video` inside the aiming frame, calling onCode for
 * each text seen; off the page's thread where the browser can. */
export function qrReader(video, onCode) {
  let running = true, busy = false, seq = 0;
  const offThread = typeof OffscreenCanvas !== "undefined" && "createImageBitmap" in window && "Worker" in window;
  const worker = offThread ? new Worker("/app/qr-worker.js") : null;
  let mainThread = null;
  if (worker) {
    worker.onmessage = (e) => {
      busy = false;
      if (running && e.data.text) onCode(e.data.text);
    };
    worker.onerror = () => { busy = false; };
  }
  // The aiming frame: a centred square, 80 % of the short side; read
  // scaled to at most 320 px (a ticket's QR code held there keeps ≥ 2 px
  // a module).
  const grab = async () => {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return;
    const side = Math.round(Math.min(w, h) * 0.8);
    const out = Math.min(side, 320);
    const sx = Math.round((w - side) / 2), sy = Math.round((h - side) / 2);
    busy = true;
    try {
      if (worker) {
        const bitmap = await createImageBitmap(video, sx, sy, side, side, { resizeWidth: out, resizeHeight: out, resizeQuality: "low" });
        worker.postMessage({ bitmap, id: ++seq }, [bitmap]);
      } else {
        mainThread = mainThread || (await slowReader());
        const text = mainThread(video, sx, sy, side, out);
        busy = false;
        if (running && text) onCode(text);
      }
    } catch {
      busy = false;
    }
  };
  const tick = () => {
    if (!running) return;
    if (!busy && !video.paused) grab();
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(tick);
    else setTimeout(tick, 40);
  };
  tick();
  return () => { running = false; if (worker) worker.terminate(); };
}

/** jsQR on the page's thread, for browsers without OffscreenCanvas. */
async function slowReader() {
  if (!window.jsQR) {
    await new Promise((ok, fail) => {
      const s = document.createElement("script");
      s.src = "/app/vendor/jsQR.js";
      s.onload = ok;
      s.onerror = fail;
      document.head.append(s);
    });
  }
  const canvas = document.createElement("canvas");
  const g = canvas.getContext("2d", { willReadFrequently: true });
  return (video, sx, sy, side, out) => {
    canvas.width = out;
    canvas.height = out;
    g.drawImage(video, sx, sy, side, side, 0, 0, out, out);
    const found = window.jsQR(g.getImageData(0, 0, out, out).data, out, out, { inversionAttempts: "dontInvert" });
    return found ? found.data : null;
  };
}

