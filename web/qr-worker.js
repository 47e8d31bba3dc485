// @ts-check
// Reads QR codes off the page's thread: the door sends the part of each
// camera frame inside its aiming frame, already cropped and scaled down
// (an ImageBitmap), and gets back the code's text or null. The browser's
// BarcodeDetector where it has one (in a worker too), else the vendored
// jsQR on the pixels.
let detect = null;

async function setUp() {
  if ("BarcodeDetector" in self) {
    try {
      const formats = await self.BarcodeDetector.getSupportedFormats();
      if (formats.includes("qr_code")) {
        const d = new self.BarcodeDetector({ formats: ["qr_code"] });
        return async (bitmap) => {
          const codes = await d.detect(bitmap);
          return codes.length ? codes[0].rawValue : null;
        };
      }
    } catch {
      // Fall through to jsQR.
    }
  }
  importScripts("/app/vendor/jsQR.js");
  let canvas = null, g = null;
  return async (bitmap) => {
    const { width: w, height: h } = bitmap;
    if (!canvas || canvas.width !== w || canvas.height !== h) {
      canvas = new OffscreenCanvas(w, h);
      g = canvas.getContext("2d", { willReadFrequently: true });
    }
    g.drawImage(bitmap, 0, 0);
    const found = self.jsQR(g.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: "dontInvert" });
    return found ? found.data : null;
  };
}

self.onmessage = async (event) => {
  const { bitmap, id } = event.data;
  let text = null;
  try {
    detect = detect || (await setUp());
    text = await detect(bitmap);
  } catch {
    text = null;
  } finally {
    bitmap.close();
  }
  self.postMessage({ id, text });
};
